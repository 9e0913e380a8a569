package store

import (
	"encoding/binary"
	"fmt"

	"go.etcd.io/bbolt"
)

// SchemaVersion is the version of the database layout this package reads
// and writes. Open refuses a database with a higher version and migrates one
// with a lower version.
const SchemaVersion = 1

// currentSchema is the version Open migrates to. It is SchemaVersion except
// in tests, which raise it to exercise the migration machinery.
var currentSchema uint32 = SchemaVersion

// migrations[i] moves a database from schema version i+1 to i+2. Open runs
// the steps a database needs in order, all in the transaction that then
// records the new version, so a failed step leaves the database as it was.
// A step that changes the layout must come with a bump of SchemaVersion.
var migrations []func(tx *bbolt.Tx) error

// readSchema returns the schema version stored in the meta bucket.
func readSchema(meta *bbolt.Bucket) (uint32, error) {
	v := meta.Get(schemaKey)
	if len(v) != 4 {
		return 0, fmt.Errorf("schema version is %d bytes, want 4", len(v))
	}
	n := binary.BigEndian.Uint32(v)
	if n == 0 {
		return 0, fmt.Errorf("schema version is 0")
	}
	return n, nil
}

// writeSchema stores version v in the meta bucket.
func writeSchema(meta *bbolt.Bucket, v uint32) error {
	return meta.Put(schemaKey, binary.BigEndian.AppendUint32(nil, v))
}

// migrate brings a database at schema version from up to currentSchema,
// inside tx.
func migrate(tx *bbolt.Tx, from uint32) error {
	for v := from; v < currentSchema; v++ {
		i := int(v) - 1
		if i >= len(migrations) {
			return fmt.Errorf("no migration from schema version %d to %d", v, v+1)
		}
		if err := migrations[i](tx); err != nil {
			return fmt.Errorf("migrate schema version %d to %d: %w", v, v+1, err)
		}
	}
	return writeSchema(tx.Bucket(metaBucket), currentSchema)
}
