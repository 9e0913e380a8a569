package reliability

import (
	"os"
	"testing"

	"github.com/idmproject/idm/internal/proctest"
)

// long reports whether the long forms run (make test-reliability).
var long = os.Getenv("IDM_RELIABILITY") == "long"

// pick returns short for make test and long for make test-reliability.
func pick[T any](short, long_ T) T {
	if long {
		return long_
	}
	return short
}

func TestMain(m *testing.M) { proctest.Main(m) }
