package routing

import (
	"os"
	"path/filepath"

	"github.com/servalnet/serval/internal/api"
)

func ptrTo[T any](v T) *T { return &v }

func asn(n uint32) *api.ASNumber { a := api.ASNumberFrom(n); return &a }

func writeFile(path, content string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(content), 0o600)
}
