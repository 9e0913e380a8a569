// Package metalink reads and writes Metalink 4 documents (RFC 5854,
// ".meta4"), which mirror networks publish beside a file: its size, its
// whole-file hashes, often the hashes of its pieces, and the mirrors that
// hold it, each with a priority and a country.
//
// A Metalink describes, it does not fetch: [Parse] turns a document into
// [File] values that the rest of idm already understands, an
// [identity.File] for what can check the bytes and a list of http(s)
// addresses in the normal form of package addr for where to get them.
// Downloading them is the job of the HTTP source, as for any mirror.
//
// # What is read
//
// Of each <file>: its name, <size>, <hash> (whole-file), <pieces> and
// <url>. Hashes and pieces are kept for the algorithms package identity
// knows (SHA-256, SHA-1, BLAKE3); an MD5 is ignored, not refused, since
// mirror networks give it beside a stronger one. When a file lists pieces
// under several algorithms the strongest is kept.
//
// # What is ignored
//
// <metaurl> (torrents and other Metalinks), ftp:// and other schemes idm
// cannot fetch, signatures, and the document's descriptive elements
// (<generator>, <origin>, <published>, <publisher> and the like): none of
// them changes what the bytes are or where http(s) can get them.
//
// # What is refused
//
// Anything that is not a Metalink 4 document, including Metalink 3
// (.metalink); a document larger than [MaxSize]; a file name that could
// leave the download directory or that holds a path separator at all
// (RFC 5854 allows subdirectories, but a job downloads one file into one
// directory); a hash whose hex does not fit its algorithm; pieces whose
// count does not match the size; a priority or location outside the
// RFC's syntax; and a file that no http(s) mirror offers. A refusal is
// one line that names the file and what is wrong with it. Pieces that
// are well formed but outside identity's limits (too short, too many) are
// dropped instead: the file can still be downloaded and checked whole.
//
// # Writing
//
// [Write] is Parse's inverse, for idm-server to describe the file it
// serves: what it writes, Parse reads back as the same files, and what
// Parse would refuse, it refuses to write.
package metalink
