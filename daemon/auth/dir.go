package auth

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/idmproject/idm/store"
)

// ErrDenied reports a request the caller is not permitted: an output
// directory it may not create files in (idmd may run as another user than
// its callers, root or the system service's user, so it checks for them
// what the kernel checks for it), a change to another user's job, or to
// the global limit by a caller that is neither root nor the daemon's user.
var ErrDenied = errors.New("permission denied")

// ErrBadDir reports an output directory that cannot be used whoever
// asks: it does not exist, is not a directory, or cannot be looked at.
var ErrBadDir = errors.New("output directory cannot be used")

// DeniedError is a refusal that says all in its own words: its message
// does not begin with ErrDenied's, which it wraps.
type DeniedError struct {
	// Msg is the refusal's one line.
	Msg string
}

// Error returns the refusal's line.
func (e *DeniedError) Error() string { return e.Msg }

// Unwrap returns ErrDenied.
func (e *DeniedError) Unwrap() error { return ErrDenied }

// badDir is an output directory that cannot be used: its message is its
// own, and it wraps ErrBadDir.
type badDir struct{ msg string }

func (e *badDir) Error() string { return e.msg }
func (e *badDir) Unwrap() error { return ErrBadDir }

func badDirf(format string, args ...any) error {
	return &badDir{fmt.Sprintf(format, args...)}
}

// Permission bits of one class (owner, group or other) of a file's mode.
const (
	permWrite  = 2
	permSearch = 1
)

// Tags of a POSIX ACL's entries.
const (
	aclUserObj  = 0x01
	aclUser     = 0x02
	aclGroupObj = 0x04
	aclGroup    = 0x08
	aclMask     = 0x10
	aclOther    = 0x20
)

// aclEntry is one entry of a POSIX access ACL.
type aclEntry struct {
	tag  uint16
	perm uint16 // rwx as in a mode's class
	id   int    // the user or group of a named entry
}

// MustCheck reports whether the daemon checks o's permissions itself. Not
// for root, who may write anywhere, nor for the daemon's own user, for
// whom the kernel checks every file the daemon creates; nor for an unknown
// owner, where the platform does not tell who the caller is (the socket's
// mode is then the only guard).
func MustCheck(o *store.Owner) bool {
	return o != nil && o.UID != 0 && o.UID != os.Geteuid()
}

// maxLinks is how many symbolic links a path may go through, as on Linux.
const maxLinks = 40

// ResolveDir checks an absolute, clean output directory and returns it
// with every symbolic link resolved, and its identity. With who, it also
// checks that who may create a file in it, as the kernel would: it walks
// the path as the kernel resolves it, one name at a time, following
// symbolic links, and requires search permission on every directory it
// looks a name up in, and write and search permission on the directory it
// ends at. Every directory along the path as given and along the resolved
// path is one of those; so are the directories that links lead through on
// the way, which a check of the two paths alone would miss. A refusal
// tells who no more than it could learn itself: the walk stops at the
// first directory who may not search, before looking into it.
//
// The rules are POSIX's, and Linux's POSIX ACLs: the owner's bits if who
// owns the directory; otherwise, where the directory has an ACL, the ACL;
// otherwise the group's bits if the directory's group is who's primary or
// a supplementary group, else the others'. Root may do anything.
//
// Why ACLs are read: an ACL never grants a user who does not own the
// directory more than the group bits show (they show the ACL's mask, which
// bounds every named and group entry) or the other bits (other's entry);
// but it may grant less than the bits the rules above would pick for that
// user. A named user's entry applies instead of the group or other bits
// (user:bob:--- on a directory of mode 0777 refuses bob), and a user that
// some group entry matches is refused, even where other would grant, if
// none of those entries grants. The mode bits alone would allow what the
// kernel refuses; with the ACL, the check refuses exactly what it does.
//
// What it does not model: NFSv4 and other non-POSIX ACLs; security modules
// (SELinux, AppArmor), which may refuse who what the bits allow; a caller's
// capabilities (CAP_DAC_OVERRIDE without being root is refused);
// read-only mounts and immutable files, which refuse everyone, idmd too,
// and which idmd's own trial write catches. Paths and IDs are as the
// daemon sees them, in its mount and user namespaces. The check is made
// when the job is created and each time it starts, on paths: a directory
// replaced between the check and a write (renamed away, a link put in its
// place) is for the write path to catch, against the identity returned
// here and kept as the job's DirID.
func ResolveDir(dir string, who *store.Owner) (string, store.FileID, error) {
	cur, links := "/", 0
	rest := names(dir)
	for len(rest) > 0 {
		name := rest[0]
		rest = rest[1:]
		if err := checkDir(who, dir, cur, permSearch); err != nil {
			return "", store.FileID{}, err
		}
		if name == "." {
			continue
		}
		if name == ".." {
			cur = filepath.Dir(cur)
			continue
		}
		next := filepath.Join(cur, name)
		fi, err := os.Lstat(next)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return "", store.FileID{}, badDirf("output directory %s does not exist", dir)
		case err != nil:
			return "", store.FileID{}, badDirf("output directory %s: %v", dir, err)
		case fi.Mode()&fs.ModeSymlink != 0:
			if links++; links > maxLinks {
				return "", store.FileID{}, badDirf("output directory %s: too many symbolic links", dir)
			}
			target, err := os.Readlink(next)
			if err != nil {
				return "", store.FileID{}, badDirf("output directory %s: %v", dir, err)
			}
			if filepath.IsAbs(target) {
				cur = "/"
			}
			rest = append(names(target), rest...)
		case !fi.IsDir() && next == dir:
			return "", store.FileID{}, badDirf("output directory %s is not a directory", dir)
		case !fi.IsDir():
			return "", store.FileID{}, badDirf("output directory %s: %s is not a directory", dir, next)
		default:
			cur = next
		}
	}
	if err := checkDir(who, dir, cur, permWrite|permSearch); err != nil {
		return "", store.FileID{}, err
	}
	fi, err := os.Stat(cur)
	if err != nil {
		return "", store.FileID{}, badDirf("output directory %s: %v", dir, err)
	}
	return cur, dirIdentity(fi), nil
}

// names splits a path into its names.
func names(path string) []string {
	var out []string
	for _, n := range strings.Split(path, "/") {
		if n != "" {
			out = append(out, n)
		}
	}
	return out
}

// checkDir checks, when who is not nil, that who has every permission of
// want on the directory at path, on the way to the directory it asked
// for; the error is the one clear line of a refusal.
func checkDir(who *store.Owner, asked, path string, want uint16) error {
	if who == nil {
		return nil
	}
	fi, err := os.Stat(path)
	if err != nil {
		return badDirf("output directory %s: %v", asked, err)
	}
	err = may(who, path, fi, want)
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w: uid %d may not create files in %s: %v", ErrDenied, who.UID, asked, err)
}

// may checks that who has every permission of want on the file at path,
// whose details are fi.
func may(who *store.Owner, path string, fi fs.FileInfo, want uint16) error {
	uid, gid, ok := fileOwner(fi)
	if !ok {
		return fmt.Errorf("cannot tell who owns %s", path)
	}
	acl, err := readACL(path)
	if err != nil {
		return fmt.Errorf("read the ACL of %s: %v", path, err)
	}
	if permits(who, uid, gid, fi.Mode(), acl, want) {
		return nil
	}
	what := "search"
	if want&permWrite != 0 && permits(who, uid, gid, fi.Mode(), acl, permSearch) {
		what = "write"
	} else if want&permWrite != 0 {
		what = "write or search"
	}
	note := ""
	if acl != nil {
		note = ", and an ACL"
	}
	return fmt.Errorf("no %s permission on %s (mode %04o, owner %d, group %d%s)", what, path, octalMode(fi.Mode()), uid, gid, note)
}

// permits reports whether who has every permission of want on a file of
// the given owner, group, mode and access ACL (nil for none), by the
// kernel's rules (see ResolveDir).
func permits(who *store.Owner, uid, gid int, mode fs.FileMode, acl []aclEntry, want uint16) bool {
	if who.UID == 0 {
		return true
	}
	perm := uint16(mode.Perm())
	if who.UID == uid {
		return perm>>6&want == want
	}
	// The kernel looks at the ACL only when the group class grants
	// something: with a mask of none, the mode bits decide.
	if acl != nil && perm>>3&7 != 0 {
		return aclPermits(who, gid, acl, want)
	}
	if inGroup(who, gid) {
		return perm>>3&want == want
	}
	return perm&want == want
}

// aclPermits applies an access ACL to who, who does not own the file: as
// Linux's posix_acl_permission does, a named user's entry decides (within
// the mask); else the first of the owning group's and the named groups'
// entries that matches who and grants want decides (within the mask), and
// if some matched and none granted, the answer is no; else other's entry.
func aclPermits(who *store.Owner, gid int, acl []aclEntry, want uint16) bool {
	mask := uint16(7)
	for _, e := range acl {
		if e.tag == aclMask {
			mask = e.perm
		}
	}
	for _, e := range acl {
		if e.tag == aclUser && e.id == who.UID {
			return e.perm&mask&want == want
		}
	}
	// The kernel stops at the first group entry that matches and grants
	// want, then applies the mask: whichever it is, the answer is the
	// mask's.
	matched, granted := false, false
	for _, e := range acl {
		g := e.id
		switch e.tag {
		case aclGroupObj:
			g = gid
		case aclGroup:
		default:
			continue
		}
		if inGroup(who, g) {
			matched = true
			granted = granted || e.perm&want == want
		}
	}
	if matched {
		return granted && mask&want == want
	}
	for _, e := range acl {
		if e.tag == aclOther {
			return e.perm&want == want
		}
	}
	return false
}

func inGroup(who *store.Owner, gid int) bool {
	return who.GID == gid || slices.Contains(who.Groups, gid)
}

// octalMode returns a mode's permission bits as chmod takes them, with
// the set-user-ID, set-group-ID and sticky bits.
func octalMode(m fs.FileMode) uint32 {
	o := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		o |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		o |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		o |= 0o1000
	}
	return o
}

// WithinDirs reports whether dir, a clean absolute path without symbolic
// links (as ResolveDir returns it), is one of dirs or in one of them,
// each of dirs taken with its symbolic links resolved. A directory of
// dirs that cannot be resolved (it does not exist) holds nothing.
func WithinDirs(dir string, dirs []string) bool {
	for _, d := range dirs {
		r, err := filepath.EvalSymlinks(d)
		if err != nil || !filepath.IsAbs(r) {
			continue
		}
		if dir == r || strings.HasPrefix(dir, strings.TrimSuffix(r, string(filepath.Separator))+string(filepath.Separator)) {
			return true
		}
	}
	return false
}
