//go:build !linux

package dist

import "syscall"

// childAttr: outside Linux there is no parent-death signal; the launcher
// still stops the ranks itself when one fails.
func childAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{} }
