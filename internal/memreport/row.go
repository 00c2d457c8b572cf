package memreport

// Row is one variant of a memory report.
type Row struct {
	Variant      Variant          `json:"variant"`
	Predicted    map[string]int64 `json:"predicted_bytes"`
	Kinds        map[string]int64 `json:"predicted_activation_bytes_by_kind"`
	MaxBatch     int              `json:"max_micro_batch"`
	Measured     map[string]int64 `json:"measured_bytes,omitempty"`
	DriverUsed   int64            `json:"driver_used_bytes,omitempty"`
	ErrorPercent *float64         `json:"error_percent,omitempty"`
}
