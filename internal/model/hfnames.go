package model

import "fmt"

// The tensor names of transformers' LlamaForCausalLM and
// LlamaForSequenceClassification: every parameter is declared, loaded and
// saved under its HuggingFace name, so these are the only spellings.
const (
	hfEmbed  = "model.embed_tokens.weight"
	hfNorm   = "model.norm.weight"
	hfLMHead = "lm_head.weight"
	hfScore  = "score.weight" // the classification head

	hfAttnNorm = "input_layernorm.weight"          // in each decoder layer
	hfMLPNorm  = "post_attention_layernorm.weight" // in each decoder layer

	// hfRotaryBuffer ends the names of the rotary inverse frequencies some
	// checkpoints store: a buffer compact recomputes, not a weight.
	hfRotaryBuffer = ".rotary_emb.inv_freq"
)

// hfLinears are the module paths of a decoder layer's linears, by linear.
var hfLinears = [numLinear]string{"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
	"mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"}

// hfLayer names tensor name of decoder layer l.
func hfLayer(l int, name string) string { return fmt.Sprintf("model.layers.%d.%s", l, name) }

// hfLinear names the weight of linear li in decoder layer l.
func hfLinear(l int, li linear) string { return hfLayer(l, hfLinears[li]+".weight") }
