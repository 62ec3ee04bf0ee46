package k8s

import (
	"os"
	"testing"

	"github.com/servalnet/serval/internal/labtest"
)

var binDir, repo string

func TestMain(m *testing.M) {
	cmds := []string{"./cmd/servalctl", "./cmd/serval", "./cmd/serval-ipam", "./cmd/serval-node", "./cmd/serval-lab"}
	os.Exit(labtest.Main(m, "k8s", cmds, func(dir, root string) error {
		binDir, repo = dir, root
		return nil
	}))
}
