package dist

import "syscall"

// childAttr puts a rank in its own process group (the launcher relays
// signals) and kills it if the launcher dies, even by SIGKILL.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
