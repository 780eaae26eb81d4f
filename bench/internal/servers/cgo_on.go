//go:build cgo

package servers

const cgoEnabled = true
