package kubecluster

import (
	"os"
	"testing"

	"github.com/servalnet/serval/internal/labtest"
)

var binDir string

func TestMain(m *testing.M) {
	cmds := []string{"./cmd/servalctl", "./cmd/serval", "./cmd/serval-ipam", "./cmd/serval-node", "./cmd/serval-pause"}
	os.Exit(labtest.Main(m, "kubecluster", cmds, func(dir, _ string) error {
		binDir = dir
		return nil
	}))
}
