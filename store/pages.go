package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
)

// bbolt reads its file through a memory map and follows the page numbers
// and offsets it finds there without checking them against the file: a
// damaged page can send it outside the map, a fault that no recover()
// catches, or round a cycle forever. So before bbolt reads a file it has
// not written in this process, walkFile reads the file itself, with
// ReadAt, and checks every page number and offset that bbolt would
// follow. It knows as much of bbolt's file format (version 2) as that
// takes: the layout of a page header, a meta page, branch and leaf
// elements, bucket headers and the freelist page.
//
// Numbers are in the machine's byte order, as bbolt writes them.

// Page flags and the bucket flag of a leaf element.
const (
	branchPageFlag   = 0x01
	leafPageFlag     = 0x02
	freelistPageFlag = 0x10
	bucketLeafFlag   = 0x01
)

const (
	pageHeaderSize   = 16 // id u64, flags u16, count u16, overflow u32
	elementSize      = 16 // branch: pos, ksize u32, page u64; leaf: flags, pos, ksize, vsize u32
	bucketHeaderSize = 16 // root page u64 (0: inline), sequence u64
	metaSize         = 64 // magic, version, page size, flags u32; root bucket; freelist, pages, txid, checksum u64
	metaChecksummed  = 56 // the checksum covers the meta up to itself

	boltMagic   = 0xED0CDAED
	boltVersion = 2
	noFreelist  = ^uint64(0)

	// maxDepth bounds how deep buckets and branch pages may nest. A
	// B+tree of 4 KiB pages holding 2^40 keys is less than 20 deep.
	maxDepth = 64
)

// boltMeta is a meta page: where the file's trees start and how many
// pages it uses.
type boltMeta struct {
	pageSize uint64
	root     uint64 // the root bucket's page
	freelist uint64 // noFreelist when the freelist is not stored
	pages    uint64 // the high-water mark: pages below it are in use or free
	txid     uint64
}

// readMeta reads and validates the meta page at off.
func readMeta(f io.ReaderAt, off int64) (boltMeta, error) {
	b := make([]byte, pageHeaderSize+metaSize)
	if _, err := f.ReadAt(b, off); err != nil {
		return boltMeta{}, err
	}
	m := b[pageHeaderSize:]
	ne := binary.NativeEndian
	switch {
	case ne.Uint32(m[0:]) != boltMagic:
		return boltMeta{}, errors.New("not a bbolt meta page")
	case ne.Uint32(m[4:]) != boltVersion:
		return boltMeta{}, fmt.Errorf("bbolt file format version %d, want %d", ne.Uint32(m[4:]), boltVersion)
	}
	h := fnv.New64a()
	h.Write(m[:metaChecksummed])
	if h.Sum64() != ne.Uint64(m[metaChecksummed:]) {
		return boltMeta{}, errors.New("meta page checksum mismatch")
	}
	return boltMeta{
		pageSize: uint64(ne.Uint32(m[8:])),
		root:     ne.Uint64(m[16:]),
		freelist: ne.Uint64(m[32:]),
		pages:    ne.Uint64(m[40:]),
		txid:     ne.Uint64(m[48:]),
	}, nil
}

// currentMeta returns the meta page bbolt uses for transaction txid: the
// valid one of the two, at the start of pages 0 and 1, with that ID.
func currentMeta(f io.ReaderAt, pageSize int, txid uint64) (boltMeta, error) {
	for _, off := range []int64{0, int64(pageSize)} {
		m, err := readMeta(f, off)
		if err == nil && m.txid == txid && m.pageSize == uint64(pageSize) {
			return m, nil
		}
	}
	// bbolt has just read one of them: only a change to the file since
	// then gets here.
	return boltMeta{}, fmt.Errorf("no meta page for transaction %d", txid)
}

// pageWalker reads a file's pages to check their structure. It reads
// page headers, elements and bucket headers, not keys and values, so that
// it reads a small part of a file whose values are large.
type pageWalker struct {
	f    *os.File
	meta boltMeta
	seen map[uint64]bool // pages already reached, overflow included
	free map[uint64]bool // pages the freelist names
}

// walkFile checks that every page reachable from meta, and the freelist,
// lies within the file's meta.pages pages, that the file holds them all,
// and that every element, key, value and inline bucket lies within its
// page. It reports the first problem.
func walkFile(f *os.File, size int64, meta boltMeta) error {
	if end := meta.pages * meta.pageSize; meta.pages < 2 || end/meta.pageSize != meta.pages || end > uint64(size) {
		return fmt.Errorf("the file is %d bytes, but its %d pages of %d bytes need %d: it was cut short", size, meta.pages, meta.pageSize, end)
	}
	w := &pageWalker{f: f, meta: meta, seen: map[uint64]bool{0: true, 1: true}, free: map[uint64]bool{}}
	if meta.freelist != noFreelist {
		if err := w.freelist(meta.freelist); err != nil {
			return err
		}
	}
	if err := w.tree(meta.root, 0); err != nil {
		return err
	}
	// bbolt panics ("page already freed") when it frees a page the
	// freelist already names: a page in use must not be listed free.
	for id := range w.free {
		if w.seen[id] {
			return fmt.Errorf("page %d is in use and listed free", id)
		}
	}
	return nil
}

// A pageRef is a page whose header has been checked.
type pageRef struct {
	r     io.ReaderAt // holds the page from offset 0
	head  []byte      // the page's first bytes, read already
	size  uint64      // its length in bytes, overflow included
	flags uint16
	count int
	where string // how errors name it
}

// read returns n bytes from offset off of the page, which must lie within
// it.
func (p pageRef) read(off, n uint64) ([]byte, error) {
	if off+n > p.size || off+n < off {
		return nil, fmt.Errorf("%s: %d bytes at offset %d, outside its %d bytes", p.where, n, off, p.size)
	}
	if off+n <= uint64(len(p.head)) {
		return p.head[off : off+n], nil
	}
	b := make([]byte, n)
	// A ReadAt that fills b may still say io.EOF at the end of the input.
	if got, err := p.r.ReadAt(b, int64(off)); got < len(b) {
		return nil, fmt.Errorf("read %s: %w", p.where, err)
	}
	return b, nil
}

// page checks the header of page id: that the page lies within the file,
// says it is page id, and has not been reached before.
func (w *pageWalker) page(id uint64) (pageRef, error) {
	if id < 2 || id >= w.meta.pages {
		return pageRef{}, fmt.Errorf("page %d is outside the file's pages 2 to %d", id, w.meta.pages-1)
	}
	p := pageRef{
		r:     io.NewSectionReader(w.f, int64(id*w.meta.pageSize), int64((w.meta.pages-id)*w.meta.pageSize)),
		size:  w.meta.pageSize,
		where: fmt.Sprintf("page %d", id),
	}
	// One read for the header and, mostly, all the elements.
	hdr, err := p.read(0, w.meta.pageSize)
	if err != nil {
		return pageRef{}, err
	}
	p.head = hdr
	if got := binary.NativeEndian.Uint64(hdr); got != id {
		return pageRef{}, fmt.Errorf("page %d says it is page %d", id, got)
	}
	overflow := uint64(binary.NativeEndian.Uint32(hdr[12:]))
	if id+overflow >= w.meta.pages {
		return pageRef{}, fmt.Errorf("page %d runs %d pages past the file's %d", id, id+overflow+1-w.meta.pages, w.meta.pages)
	}
	for i := id; i <= id+overflow; i++ {
		if w.seen[i] {
			return pageRef{}, fmt.Errorf("page %d is reached twice", i)
		}
		w.seen[i] = true
	}
	p.size = (overflow + 1) * w.meta.pageSize
	p.flags = binary.NativeEndian.Uint16(hdr[8:])
	p.count = int(binary.NativeEndian.Uint16(hdr[10:]))
	return p, nil
}

// freelist checks the freelist page: its list of free pages fits in it
// and names only pages of the file.
func (w *pageWalker) freelist(id uint64) error {
	p, err := w.page(id)
	if err != nil {
		return fmt.Errorf("freelist: %w", err)
	}
	if p.flags != freelistPageFlag {
		return fmt.Errorf("freelist page %d has flags %#x, not a freelist's", id, p.flags)
	}
	off, count := uint64(pageHeaderSize), uint64(p.count)
	if count == 0xffff {
		// The count overflowed into the first element.
		b, err := p.read(off, 8)
		if err != nil {
			return err
		}
		off, count = off+8, binary.NativeEndian.Uint64(b)
	}
	if count > (p.size-off)/8 {
		return fmt.Errorf("freelist page %d lists %d pages, more than it holds", id, count)
	}
	ids, err := p.read(off, 8*count)
	if err != nil {
		return err
	}
	for i := range count {
		free := binary.NativeEndian.Uint64(ids[8*i:])
		if free < 2 || free >= w.meta.pages {
			return fmt.Errorf("free page %d is outside the file's pages 2 to %d", free, w.meta.pages-1)
		}
		if w.free[free] {
			return fmt.Errorf("page %d is listed free twice", free)
		}
		w.free[free] = true
	}
	return nil
}

// tree checks the B+tree whose root is page id, and every bucket in it.
func (w *pageWalker) tree(id uint64, depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("page %d is nested more than %d deep", id, maxDepth)
	}
	p, err := w.page(id)
	if err != nil {
		return err
	}
	switch p.flags {
	case leafPageFlag:
		return w.leaf(p, depth)
	case branchPageFlag:
	default:
		return fmt.Errorf("page %d has flags %#x, neither a branch's nor a leaf's", id, p.flags)
	}
	if p.count == 0 {
		return fmt.Errorf("branch page %d is empty", id)
	}
	elems, err := p.read(pageHeaderSize, uint64(p.count)*elementSize)
	if err != nil {
		return err
	}
	for i := range p.count {
		e := elems[i*elementSize:]
		pos, ksize := binary.NativeEndian.Uint32(e), binary.NativeEndian.Uint32(e[4:])
		if err := within(p, i, pos, uint64(ksize)); err != nil {
			return err
		}
		if err := w.tree(binary.NativeEndian.Uint64(e[8:]), depth+1); err != nil {
			return err
		}
	}
	return nil
}

// leaf checks the elements of a leaf page, or of an inline bucket's page,
// and every bucket among them.
func (w *pageWalker) leaf(p pageRef, depth int) error {
	elems, err := p.read(pageHeaderSize, uint64(p.count)*elementSize)
	if err != nil {
		return err
	}
	for i := range p.count {
		e := elems[i*elementSize:]
		flags, pos := binary.NativeEndian.Uint32(e), binary.NativeEndian.Uint32(e[4:])
		ksize, vsize := binary.NativeEndian.Uint32(e[8:]), binary.NativeEndian.Uint32(e[12:])
		if err := within(p, i, pos, uint64(ksize)+uint64(vsize)); err != nil {
			return err
		}
		if flags&bucketLeafFlag == 0 {
			continue
		}
		v, err := p.read(elemOffset(i)+uint64(pos)+uint64(ksize), uint64(vsize))
		if err != nil {
			return err
		}
		if err := w.bucket(v, fmt.Sprintf("%s, bucket %d", p.where, i), depth+1); err != nil {
			return err
		}
	}
	return nil
}

// bucket checks a bucket header v and the bucket's tree, or its inline
// page.
func (w *pageWalker) bucket(v []byte, where string, depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("%s is nested more than %d deep", where, maxDepth)
	}
	if len(v) < bucketHeaderSize {
		return fmt.Errorf("%s: header of %d bytes, want %d", where, len(v), bucketHeaderSize)
	}
	if root := binary.NativeEndian.Uint64(v); root != 0 {
		return w.tree(root, depth)
	}
	inline := v[bucketHeaderSize:]
	if len(inline) < pageHeaderSize {
		return fmt.Errorf("%s: inline page of %d bytes", where, len(inline))
	}
	p := pageRef{
		r:     bytes.NewReader(inline),
		head:  inline,
		size:  uint64(len(inline)),
		flags: binary.NativeEndian.Uint16(inline[8:]),
		count: int(binary.NativeEndian.Uint16(inline[10:])),
		where: where + " (inline)",
	}
	if p.flags != leafPageFlag {
		return fmt.Errorf("%s: inline page has flags %#x, not a leaf's", where, p.flags)
	}
	return w.leaf(p, depth)
}

// elemOffset is the offset of element i in its page.
func elemOffset(i int) uint64 { return pageHeaderSize + uint64(i)*elementSize }

// within checks that the n bytes at pos from element i of page p, where
// the element's key (and value) are, lie within the page.
func within(p pageRef, i int, pos uint32, n uint64) error {
	if off := elemOffset(i) + uint64(pos); off+n > p.size {
		return fmt.Errorf("%s, entry %d: %d bytes at offset %d, outside its page of %d", p.where, i, n, off, p.size)
	}
	return nil
}
