package data

import "fmt"

// checkShard refuses a shard that the run cannot use, before any training:
// one whose header records another tokenizer than tok (when both are
// known), or one holding a token id >= vocab (when vocab > 0). The whole
// shard is scanned up front, so a single bad token anywhere is reported at
// start-up instead of crashing (or silently training) mid-run.
func checkShard(s *Shard, tok string, vocab int) error {
	if tok != "" && s.Tokenizer() != "" && s.Tokenizer() != tok {
		return fmt.Errorf("shard %s was written with tokenizer %s, but the run uses %s (data.tokenizer); re-tokenize it or set data.tokenizer",
			s.Path(), s.Tokenizer(), tok)
	}
	if vocab <= 0 || (s.TokenSize() == 2 && vocab > 0xffff) {
		return nil // uint16 tokens cannot reach a vocabulary that large
	}
	const chunk = 1 << 20
	buf := make([]int32, min(chunk, s.Len()))
	for off := 0; off < s.Len(); off += len(buf) {
		b := buf[:min(len(buf), s.Len()-off)]
		if err := s.Read(b, off); err != nil {
			return err
		}
		for i, t := range b {
			if int(t) >= vocab {
				return fmt.Errorf("shard %s: token %d at position %d is outside model.vocab_size %d (made with another tokenizer?)",
					s.Path(), t, off+i, vocab)
			}
		}
	}
	return nil
}
