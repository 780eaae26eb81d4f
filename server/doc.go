// Package server implements etcd's gRPC services (KV, Watch, Lease, Cluster,
// Maintenance and a disabled Auth) over the storage engine, as a
// kube-apiserver and other etcd clients expect them.
//
// # Contract
//
// Requests are checked here with etcd's own rules and errors (empty keys,
// sort options, request size, txn op count, keys written twice in one txn),
// so a malformed request changes nothing and gets the status etcd would
// send. Domain errors from the backend become etcd's gRPC errors in one
// place, toGRPC: client/v3 maps errors back by their message, so the texts
// are etcd's.
//
// Every response header carries the store-wide revision and this member's
// fixed cluster and member IDs. Streams (Watch, LeaseKeepAlive) end with
// Unavailable when the server shuts down, so clients resume rather than fail.
package server
