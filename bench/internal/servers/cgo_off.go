//go:build !cgo

package servers

const cgoEnabled = false
