// Package kinelite is an embedded, kine-compatible etcd v3 datastore: it
// serves etcd's gRPC API from kine's SQL table, so a kube-apiserver (or any
// etcd client) runs on SQLite, and a database written by kine opens as it is.
//
// # Embedding
//
//	srv, err := kinelite.Open(ctx, kinelite.Config{
//		Endpoint:      "sqlite:///var/lib/app/state.db",
//		ListenAddress: "unix:///run/app/etcd.sock",
//	})
//	if err != nil { ... }
//	defer srv.Close(context.Background())
//	// point an etcd client (or kube-apiserver --etcd-servers) at srv.Endpoints()
//
// The zero Config serves on 127.0.0.1:2379 over ./db/state.db. Package
// endpoint offers kine's Listen for embedders switching from kine.
//
// # Layout
//
// backend holds the storage engine (index, group-commit committer, reads,
// leases); backend/sqlite its SQLite driver; watchhub the watch fan-out;
// compact the background compactor; server the etcd gRPC services. This
// package wires them and owns the listener.
package kinelite
