package store

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// A job's owner survives the store; an unknown one is left out of the
// JSON and comes back unknown, not as root.
func TestRecord_JSON_Owner(t *testing.T) {
	db, _ := openTestDB(t)
	r := &Record{Sources: []string{"idm://127.0.0.1:9001"}, Dir: "/srv/downloads",
		Owner: &Owner{UID: 1001, GID: 1001, Groups: []int{27, 998}}}
	if err := db.Create(r, nil); err != nil {
		t.Fatal(err)
	}
	got, err := db.Get(r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Owner, r.Owner) {
		t.Errorf("owner %+v, want %+v", got.Owner, r.Owner)
	}

	data, err := json.Marshal(Record{ID: 2, Sources: r.Sources})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), "owner") {
		t.Errorf("an unknown owner encoded: %s", data)
	}
	var back Record
	if err := json.Unmarshal(data, &back); err != nil || back.Owner != nil {
		t.Errorf("decoding without owner: %v, owner %+v", err, back.Owner)
	}
}

// The reach of the sources a server named survives the store, is left out
// of the JSON when no source has one, and a record from before it decodes
// with none: every source the user's.
func TestRecord_JSON_SourceReach(t *testing.T) {
	db, _ := openTestDB(t)
	r := &Record{Sources: []string{"http://127.0.0.1/f", "https://mirror.example/f"}, Dir: "/srv/downloads",
		SourceReach: map[string]string{"https://mirror.example/f": "public"}}
	if err := db.Create(r, nil); err != nil {
		t.Fatal(err)
	}
	got, err := db.Get(r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.SourceReach, r.SourceReach) {
		t.Errorf("source reach %v, want %v", got.SourceReach, r.SourceReach)
	}

	data, err := json.Marshal(Record{ID: 2, Sources: r.Sources})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), "source_reach") {
		t.Errorf("no reach encoded as %s", data)
	}
	var old Record
	if err := json.Unmarshal([]byte(`{"id":3,"sources":["http://127.0.0.1/f"],"dir":"/d","state":"queued"}`), &old); err != nil || old.SourceReach != nil {
		t.Errorf("a record from before: %v, source reach %v", err, old.SourceReach)
	}
}
