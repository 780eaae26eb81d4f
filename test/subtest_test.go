package test

import "testing"

// sub runs f as a subtest; the pair reports into the subtest meanwhile.
func (p *pair) sub(name string, f func()) {
	p.t.Helper()
	t, ok := p.t.(*testing.T)
	if !ok {
		panic("pair.known needs a *testing.T")
	}
	t.Run(name, func(st *testing.T) {
		parent := p.t
		p.t = st
		defer func() { p.t = parent }()
		f()
	})
}
