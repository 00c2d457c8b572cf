// Package dist runs data-parallel training over several processes: the
// torchrun-style environment, a rendezvous and liveness group hosted by rank
// 0, the collectives (NCCL on CUDA, TCP through rank 0 on the CPU) and the
// local launcher behind `--gpus N`.
package dist

import (
	"fmt"
	"strconv"
	"strings"
)

// Env is one process's place in a data-parallel job, as torchrun describes
// it: RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT.
type Env struct {
	Rank, World, LocalRank int
	Addr                   string // rank 0's rendezvous host
	Port                   int
}

// The environment variables an Env is read from.
const (
	EnvRank      = "RANK"
	EnvWorld     = "WORLD_SIZE"
	EnvLocalRank = "LOCAL_RANK"
	EnvAddr      = "MASTER_ADDR"
	EnvPort      = "MASTER_PORT"
)

// Single is the Env of a plain one-process run.
var Single = Env{World: 1}

// Distributed reports whether e has more than one rank.
func (e Env) Distributed() bool { return e.World > 1 }

func (e Env) String() string {
	return fmt.Sprintf("rank %d of %d (local rank %d, rendezvous %s:%d)", e.Rank, e.World, e.LocalRank, e.Addr, e.Port)
}

// Vars is e as environment assignments, for a child process.
func (e Env) Vars() []string {
	return []string{
		EnvRank + "=" + strconv.Itoa(e.Rank), EnvWorld + "=" + strconv.Itoa(e.World),
		EnvLocalRank + "=" + strconv.Itoa(e.LocalRank), EnvAddr + "=" + e.Addr, EnvPort + "=" + strconv.Itoa(e.Port),
	}
}

// FromEnv reads the torchrun variables through getenv. found is false when
// neither RANK nor WORLD_SIZE is set (a plain run); once either is, all of
// them must be valid, else the error names the culprit. LOCAL_RANK defaults
// to RANK and MASTER_ADDR to 127.0.0.1; a one-rank world needs no port.
func FromEnv(getenv func(string) string) (e Env, found bool, err error) {
	rs, ws := getenv(EnvRank), getenv(EnvWorld)
	if rs == "" && ws == "" {
		return Single, false, nil
	}
	num := func(name, s string) (int, error) {
		if s == "" {
			return 0, fmt.Errorf("%s is not set (torchrun-style launch needs RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT)", name)
		}
		v, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return 0, fmt.Errorf("%s=%q is not an integer", name, s)
		}
		return v, nil
	}
	if e.World, err = num(EnvWorld, ws); err != nil {
		return e, true, err
	}
	if e.World < 1 {
		return e, true, fmt.Errorf("%s=%d: the world needs at least one rank", EnvWorld, e.World)
	}
	if e.Rank, err = num(EnvRank, rs); err != nil {
		return e, true, err
	}
	if e.Rank < 0 || e.Rank >= e.World {
		return e, true, fmt.Errorf("%s=%d is outside [0, %s=%d)", EnvRank, e.Rank, EnvWorld, e.World)
	}
	e.LocalRank = e.Rank
	if s := getenv(EnvLocalRank); s != "" {
		if e.LocalRank, err = num(EnvLocalRank, s); err != nil {
			return e, true, err
		}
		if e.LocalRank < 0 || e.LocalRank > e.Rank {
			return e, true, fmt.Errorf("%s=%d is outside [0, %s=%d]", EnvLocalRank, e.LocalRank, EnvRank, e.Rank)
		}
	}
	e.Addr = getenv(EnvAddr)
	if e.Addr == "" {
		e.Addr = "127.0.0.1"
	}
	if e.World == 1 && getenv(EnvPort) == "" {
		return e, true, nil
	}
	if e.Port, err = num(EnvPort, getenv(EnvPort)); err != nil {
		return e, true, err
	}
	if e.Port < 1 || e.Port > 65535 {
		return e, true, fmt.Errorf("%s=%d is not a TCP port", EnvPort, e.Port)
	}
	return e, true, nil
}
