//go:build linux && (amd64 || arm64)

package train

import (
	"math"
	"testing"

	"github.com/compact-llm/compact/internal/config"
	"github.com/compact-llm/compact/internal/gpu"
	"github.com/compact-llm/compact/internal/gpu/cuda"
	"github.com/compact-llm/compact/internal/model"
	"github.com/compact-llm/compact/internal/optim"
)

// One master-free, bf16-state optimizer step on the GPU against the CPU
// reference from the same bf16 weights and gradients. The rounding itself is
// bit-exact (TestCUDAStochasticRoundBits); what may differ is the fp32 value
// it rounds: the CPU's Adam runs in float64 and the GPU's in fp32, and the
// decompression GEMMs sum in different orders, a few fp32 ulps at most. A
// value then rounds differently only when those ulps straddle the noise
// threshold (probability about ulps/65536), so nearly every bit must agree
// and the rest differ by one bf16 ulp. Values that cancel to near zero
// (w - lr*u with w ~ lr*u, or a moment b1*m + (1-b1)*g whose terms nearly
// cancel after step 1 rounded m one ulp apart) carry the absolute error of
// their larger inputs, many bf16 ulps of the tiny result: those are held to
// one bf16 ulp at the tensor's scale (2^-8 of its largest magnitude)
// instead. On the H200 one such moment read 1.62e-5 (CPU) vs 1.67e-5 (GPU)
// with the tensor's largest moment at 3.8e-4.
func TestCUDALeanStepMatchesCPU(t *testing.T) {
	g, err := cuda.New(0)
	if err != nil {
		t.Skipf("no usable CUDA device: %v", err)
	}
	defer g.Close()
	for _, compact := range []bool{false, true} {
		cfg := leanVariant(leanConfig(compact))
		cfg.Model.Hidden, cfg.Model.Intermediate, cfg.Model.Heads, cfg.Model.KVHeads = 128, 344, 2, 1 // 344 = 8*43
		mc, oc, md, od := cpuAndGPU(t, g, cfg)
		for step := 1; step <= 2; step++ {
			stepBoth(t, step, []*model.Model{mc, md}, []*optim.Optimizer{oc, od})
			var differ, total int
			for i, p := range mc.Params {
				q := md.Params[i]
				for _, x := range [][2]*gpu.Tensor{{p.W, q.W}, {oc.M[i], od.M[i]}, {oc.V[i], od.V[i]}} {
					c, d := mustRead(t, mc, p, x[0]), mustRead(t, md, q, x[1])
					var maxAbs float64
					for _, v := range c {
						maxAbs = math.Max(maxAbs, math.Abs(float64(v)))
					}
					for j := range c {
						total++
						if math.Float32bits(c[j]) == math.Float32bits(d[j]) {
							continue
						}
						differ++
						near := math.Abs(float64(c[j])-float64(d[j])) <= maxAbs/256
						if diff := int64(math.Float32bits(c[j])>>16) - int64(math.Float32bits(d[j])>>16); diff != 1 && diff != -1 && !near {
							t.Fatalf("compact %v step %d: %s (%s) element %d: CPU %g, GPU %g: more than one bf16 ulp apart",
								compact, step, p.Name, x[0].Name, j, c[j], d[j])
						}
					}
				}
			}
			t.Logf("compact %v step %d: %d of %d values differ by one bf16 ulp", compact, step, differ, total)
			if differ > total/1000 {
				t.Errorf("compact %v step %d: %d of %d values differ (want at most 0.1%%)", compact, step, differ, total)
			}
		}
		od.Free()
		md.Free()
	}
}

// One step with 8-bit moments on the GPU against the CPU from the same
// weights, gradients and (zero) moments: the kernels encode identical fp32
// values to identical bytes (gpu/cuda's TestCUDAAdamInt8MatchesCPU), and
// what differs is the fp32 value encoded (the CPU's Adam runs in float64),
// so a decoded moment is within one code step (1/8 relative, or 2^-14 of
// its tensor's largest where the code flushes small values) of the CPU's,
// and the
// weights as closely as bf16 moments leave them (one bf16 ulp, or one at
// the tensor's scale).
func TestCUDAInt8StepMatchesCPU(t *testing.T) {
	g, err := cuda.New(0)
	if err != nil {
		t.Skipf("no usable CUDA device: %v", err)
	}
	defer g.Close()
	for _, compact := range []bool{false, true} {
		cfg := leanVariant(leanConfig(compact))
		cfg.Train.OptimizerState = config.StateInt8
		cfg.Model.Hidden, cfg.Model.Intermediate, cfg.Model.Heads, cfg.Model.KVHeads = 128, 344, 2, 1
		mc, oc, md, od := cpuAndGPU(t, g, cfg)
		for step := 1; step <= 2; step++ {
			stepBoth(t, step, []*model.Model{mc, md}, []*optim.Optimizer{oc, od})
			mcs, err := oc.Moments(0)
			if err != nil {
				t.Fatal(err)
			}
			mds, err := od.Moments(0)
			if err != nil {
				t.Fatal(err)
			}
			for k, x := range mcs {
				var top float64
				for _, v := range x.Data {
					top = math.Max(top, math.Abs(float64(v)))
				}
				for j, c := range x.Data {
					d := mds[k].Data[j]
					if math.Abs(float64(c-d)) > math.Abs(float64(c))/8+math.Ldexp(top, -14) {
						t.Fatalf("compact %v step %d: %s element %d: CPU %g, GPU %g", compact, step, x.Name, j, c, d)
					}
				}
			}
			for i, p := range mc.Params {
				c, d := mustRead(t, mc, p, p.W), mustRead(t, md, md.Params[i], md.Params[i].W)
				var maxAbs float64
				for _, v := range c {
					maxAbs = math.Max(maxAbs, math.Abs(float64(v)))
				}
				for j := range c {
					diff := int64(math.Float32bits(c[j])>>16) - int64(math.Float32bits(d[j])>>16)
					if diff > 1 || diff < -1 {
						if math.Abs(float64(c[j])-float64(d[j])) > maxAbs/256 {
							t.Fatalf("compact %v step %d: %s element %d: CPU %g, GPU %g", compact, step, p.Name, j, c[j], d[j])
						}
					}
				}
			}
		}
		od.Free()
		md.Free()
	}
}

// cpuAndGPU builds cfg's model and optimizer on the CPU and on g, the GPU
// one holding the CPU one's initial weights.
func cpuAndGPU(t *testing.T, g *cuda.Backend, cfg config.Config) (mc *model.Model, oc *optim.Optimizer, md *model.Model, od *optim.Optimizer) {
	t.Helper()
	mc, oc = buildPair(t, cfg)
	md, err := NewModel(g, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if od, err = optim.New(md, cfg.OptimizerConfig()); err != nil {
		t.Fatal(err)
	}
	if err := mc.Init(9); err != nil {
		t.Fatal(err)
	}
	for i, p := range mc.Params {
		if err := md.WriteParam(md.Params[i], md.Params[i].W, mustRead(t, mc, p, p.W)); err != nil {
			t.Fatal(err)
		}
	}
	return mc, oc, md, od
}

// stepBoth gives every model step's gradients and takes one unfused step
// of each optimizer.
func stepBoth(t *testing.T, step int, ms []*model.Model, os []*optim.Optimizer) {
	t.Helper()
	for _, m := range ms {
		setGrads(t, m, float64(step))
	}
	for _, o := range os {
		o.BeginStep()
		if _, err := o.Update(0.01); err != nil {
			t.Fatal(err)
		}
	}
}
