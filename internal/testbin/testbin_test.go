package testbin

import (
	"os"
	"path/filepath"
	"testing"
)

func TestRootFindsTheModule(t *testing.T) {
	root, err := Root()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "cmd", "servalctl")); err != nil {
		t.Errorf("Root() = %s, which is not the repository root: %v", root, err)
	}
}
