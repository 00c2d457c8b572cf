package dist

import (
	"os"
	"syscall"
)

// childAttr puts a rank in its own process group (the launcher relays
// signals) and kills it if the launcher dies, even by SIGKILL.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// wake continues a rank that was stopped (SIGSTOP), so that it handles the
// signal just sent.
func wake(p *os.Process) { p.Signal(syscall.SIGCONT) }
