// Package embedetcd runs a single-member etcd inside the process, for a
// single-machine Serval (`servalctl datastore serve --data-dir DIR`) and
// for tests that need a real etcd. It is a package of its own so that
// small binaries such as the CNI plugin, which only talk to a datastore,
// do not link the etcd server.
//
// It listens on loopback only unless told otherwise, and passes only
// etcd's warnings and errors to the given *slog.Logger.
//
//	srv, err := embedetcd.Start(ctx, embedetcd.Config{DataDir: "/var/lib/serval/etcd", Logger: log})
//	if err != nil { ... }
//	defer srv.Close()
//	ds, err := datastore.NewEtcd(datastore.EtcdConfig{Endpoints: []string{srv.ClientURL()}})
//
// In tests, ports of 0 pick free ones:
//
//	srv, err := embedetcd.Start(ctx, embedetcd.Config{DataDir: t.TempDir(),
//		ListenClientURL: "http://127.0.0.1:0", ListenPeerURL: "http://127.0.0.1:0"})
package embedetcd
