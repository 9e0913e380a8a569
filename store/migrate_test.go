package store

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"go.etcd.io/bbolt"
)

// withMigration appends step to migrations and raises currentSchema to
// match, until the test ends.
func withMigration(t *testing.T, step func(tx *bbolt.Tx) error) {
	t.Helper()
	saved, savedSchema := migrations, currentSchema
	t.Cleanup(func() { migrations, currentSchema = saved, savedSchema })
	migrations = append(migrations[:len(migrations):len(migrations)], step)
	currentSchema++
}

// fileSchema reads the schema version of the closed database at path.
func fileSchema(t *testing.T, path string) uint32 {
	t.Helper()
	b, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var v uint32
	err = b.View(func(tx *bbolt.Tx) error {
		var err error
		v, err = readSchema(tx.Bucket(metaBucket))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// setFileSchema writes schema version v into the closed database at path.
func setFileSchema(t *testing.T, path string, v uint32) {
	t.Helper()
	b, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Update(func(tx *bbolt.Tx) error { return writeSchema(tx.Bucket(metaBucket), v) }); err != nil {
		t.Fatal(err)
	}
}

func TestDB_Open_WritesSchema(t *testing.T) {
	db, path := openTestDB(t)
	db.Close()
	if v := fileSchema(t, path); v != SchemaVersion {
		t.Errorf("new database has schema %d, want %d", v, SchemaVersion)
	}
}

func TestDB_Open_Migrate(t *testing.T) {
	db, path := openTestDB(t)
	r := testRecord()
	if err := db.Create(r, nil); err != nil {
		t.Fatal(err)
	}
	db.Close()

	runs := 0
	withMigration(t, func(tx *bbolt.Tx) error {
		runs++
		_, err := tx.CreateBucket([]byte("added"))
		return err
	})
	db = reopen(t, path)
	if runs != 1 {
		t.Errorf("migration ran %d times, want 1", runs)
	}
	if _, err := db.Get(r.ID); err != nil {
		t.Errorf("job lost in migration: %v", err)
	}
	err := db.bolt.View(func(tx *bbolt.Tx) error {
		if tx.Bucket([]byte("added")) == nil {
			t.Error("migration's bucket is missing")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if v := fileSchema(t, path); v != SchemaVersion+1 {
		t.Errorf("schema after migration = %d, want %d", v, SchemaVersion+1)
	}

	reopen(t, path).Close()
	if runs != 1 {
		t.Errorf("migration ran again on the next Open: %d runs", runs)
	}
}

func TestDB_Open_MigrateFails(t *testing.T) {
	db, path := openTestDB(t)
	if err := db.MarkClean(); err != nil {
		t.Fatal(err)
	}
	db.Close()

	stepErr := errors.New("step failed")
	withMigration(t, func(tx *bbolt.Tx) error {
		if _, err := tx.CreateBucket([]byte("added")); err != nil {
			return err
		}
		return stepErr
	})
	if db, err := Open(path, nil); !errors.Is(err, stepErr) {
		if err == nil {
			db.Close()
		}
		t.Fatalf("Open with a failing migration: %v, want %v", err, stepErr)
	}

	if v := fileSchema(t, path); v != SchemaVersion {
		t.Errorf("schema after a failed migration = %d, want %d", v, SchemaVersion)
	}
	b, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second, ReadOnly: true})
	if err != nil {
		t.Fatal(err) // the failed Open kept the lock
	}
	defer b.Close()
	err = b.View(func(tx *bbolt.Tx) error {
		if tx.Bucket([]byte("added")) != nil {
			t.Error("a failed migration left its bucket behind")
		}
		if !bytes.Equal(tx.Bucket(metaBucket).Get(cleanKey), markClean) {
			t.Error("a failed Open cleared the clean mark")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestDB_Open_MissingMigration(t *testing.T) {
	db, path := openTestDB(t)
	db.Close()
	saved := currentSchema
	t.Cleanup(func() { currentSchema = saved })
	currentSchema++
	if db, err := Open(path, nil); err == nil {
		db.Close()
		t.Fatal("Open without a migration step succeeded")
	}
}

func TestDB_Open_NewerSchema(t *testing.T) {
	db, path := openTestDB(t)
	if err := db.Create(testRecord(), nil); err != nil {
		t.Fatal(err)
	}
	db.Close()
	setFileSchema(t, path, 7)

	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-time.Hour).Truncate(time.Second)
	if err := os.Chtimes(path, past, past); err != nil {
		t.Fatal(err)
	}

	db, err = Open(path, nil)
	if err == nil {
		db.Close()
		t.Fatal("Open of a newer schema succeeded")
	}
	if !errors.Is(err, ErrNewerSchema) {
		t.Errorf("Open: %v, want ErrNewerSchema", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "version 7 is newer than this build's 1") {
		t.Errorf("error %q does not name both versions", msg)
	}

	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Error("refused Open changed the file")
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if !fi.ModTime().Equal(past) {
		t.Errorf("refused Open changed the file's mtime to %v", fi.ModTime())
	}
}
