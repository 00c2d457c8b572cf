package model

import (
	"fmt"

	"github.com/compact-llm/compact/internal/gpu"
)

// A sharded master (Options.ShardMaster): under ZeRO-1 a rank updates a
// contiguous range of the weight arena only, so it keeps the fp32 master of
// that range only. Its owned params' Master views point into it; the other
// params have none (the optimizer updates their W, which the owner's update reaches
// by all-gather of the bf16 weights).

// keepsMaster reports whether the model has an fp32 master copy at all.
func (m *Model) keepsMaster() bool { return m.be.MasterWeights() && !m.Opts.MasterFree }

// masterPending reports whether the model waits for AllocMaster.
func (m *Model) masterPending() bool {
	return m.Opts.ShardMaster && m.keepsMaster() && m.arena.master == nil
}

// AllocMaster gives a model built with ShardMaster the master copy of
// weight-arena elements [lo, hi), which must start and end at param
// boundaries, zeroed: initialising or loading the weights (after it) fills
// it, as it fills an unsharded master.
func (m *Model) AllocMaster(lo, hi int) error {
	if !m.masterPending() {
		return fmt.Errorf("model: AllocMaster on a model that keeps no pending master")
	}
	if lo < 0 || hi > m.arena.w.Len() || lo >= hi {
		return fmt.Errorf("model: master range [%d, %d) of a %d-element arena", lo, hi, m.arena.w.Len())
	}
	var owned []*Param
	for _, p := range m.arena.order {
		if p.WOff >= lo && p.WOff < hi {
			if p.WOff+p.W.Len() > hi {
				return fmt.Errorf("model: master range [%d, %d) cuts %s", lo, hi, p.Name)
			}
			owned = append(owned, p)
		}
	}
	master, err := m.be.Alloc("master", gpu.Master, gpu.Full, hi-lo)
	if err != nil {
		return err
	}
	m.arena.master, m.arena.masterBase = master, lo
	for _, p := range owned {
		p.Master = view(master, p.WOff-lo, p.W.Shape)
	}
	return nil
}
