//go:build !linux

package dist

import (
	"os"
	"syscall"
)

// childAttr: outside Linux there is no parent-death signal; the launcher
// still stops the ranks itself when one fails.
func childAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{} }

// wake: the launcher is for Linux hosts; elsewhere a stopped rank stays
// stopped until the kill.
func wake(*os.Process) {}
