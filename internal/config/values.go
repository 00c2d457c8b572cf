package config

// Strict number checks that viper's weak decoding skips: it truncates 1.5
// to 1 for an integer key and wraps -1 into a huge uint64, and NaN or Inf
// pass every "must be positive" comparison.

import (
	"fmt"
	"math"
	"os"
	"reflect"
	"strconv"
	"strings"

	"github.com/spf13/viper"
)

// checkIntegers refuses a non-integral, out-of-range or (for unsigned keys)
// negative value of every integer key, naming the key and where it came
// from. kinds maps each key to its Go kind.
func checkIntegers(v *viper.Viper, kinds map[string]reflect.Kind, file string, overrides map[string]bool) error {
	for key, kind := range kinds {
		isInt, signed := integerKind(kind)
		if !isInt {
			continue
		}
		raw := v.Get(key)
		if err := checkInteger(raw, signed); err != nil {
			return Usagef("%s: %s = %v: %w", valueSource(key, file, overrides), key, raw, err)
		}
		// "1e5" is a whole number the decoder cannot parse as an integer.
		if str, ok := raw.(string); ok {
			if _, err := strconv.ParseInt(strings.TrimSpace(str), 0, 64); err != nil {
				if f, err := strconv.ParseFloat(strings.TrimSpace(str), 64); err == nil && f >= 0 && !signed {
					v.Set(key, uint64(f))
				} else if err == nil {
					v.Set(key, int64(f))
				}
			}
		}
	}
	return nil
}

// integerKind reports whether a config field of this kind holds an
// integer, and whether a signed one.
func integerKind(kind reflect.Kind) (isInt, signed bool) {
	switch kind {
	case reflect.Int, reflect.Int64, reflect.Int32:
		return true, true
	case reflect.Uint64, reflect.Uint, reflect.Uint32:
		return true, false
	}
	return false, false
}

// wholeNumber checks the string form of an integer key's value from --set
// or a COMPACT_* variable as checkIntegers does a file's, and rewrites a
// whole number written as a float ("1e5") in the integer form the decoder
// reads. Values of other kinds pass unchanged.
func wholeNumber(val string, kind reflect.Kind) (string, error) {
	isInt, signed := integerKind(kind)
	if !isInt {
		return val, nil
	}
	if err := checkInteger(val, signed); err != nil {
		return "", err
	}
	s := strings.TrimSpace(val)
	if _, err := strconv.ParseInt(s, 0, 64); err == nil {
		return s, nil
	}
	if _, err := strconv.ParseUint(s, 0, 64); err == nil {
		return s, nil
	}
	f, _ := strconv.ParseFloat(s, 64)
	return strconv.FormatFloat(f, 'f', 0, 64), nil
}

// checkInteger accepts whole numbers that fit int64 (uint64 without a sign
// when !signed), written as integers, integral floats or such strings.
func checkInteger(raw any, signed bool) error {
	var f float64
	switch x := raw.(type) {
	case nil:
		return nil
	case int, int8, int16, int32, int64:
		if !signed && reflect.ValueOf(x).Int() < 0 {
			return fmt.Errorf("must not be negative")
		}
		return nil
	case uint, uint8, uint16, uint32, uint64:
		if signed && reflect.ValueOf(x).Uint() > math.MaxInt64 {
			return fmt.Errorf("too large")
		}
		return nil
	case float32:
		f = float64(x)
	case float64:
		f = x
	case string:
		s := strings.TrimSpace(x)
		if _, err := strconv.ParseInt(s, 0, 64); err == nil {
			if !signed && strings.HasPrefix(s, "-") {
				return fmt.Errorf("must not be negative")
			}
			return nil
		}
		if !signed {
			if _, err := strconv.ParseUint(s, 0, 64); err == nil {
				return nil
			}
		}
		var err error
		if f, err = strconv.ParseFloat(s, 64); err != nil {
			return fmt.Errorf("not a whole number")
		}
	default:
		return fmt.Errorf("not a whole number")
	}
	switch {
	case math.IsNaN(f) || math.IsInf(f, 0) || f != math.Trunc(f):
		return fmt.Errorf("not a whole number")
	case !signed && f < 0:
		return fmt.Errorf("must not be negative")
	case f >= math.MaxInt64 || f < math.MinInt64:
		return fmt.Errorf("too large")
	}
	return nil
}

// checkFloats refuses NaN and infinite values of every float key: they
// pass range comparisons and would only fail much later, naming nothing.
func checkFloats(c Config, file string, overrides map[string]bool) error {
	for key, val := range c.Values() {
		f, ok := val.(float64)
		if ok && (math.IsNaN(f) || math.IsInf(f, 0)) {
			return Usagef("%s: %s = %g: must be a finite number", valueSource(key, file, overrides), key, f)
		}
	}
	return nil
}

// valueSource names where key's value came from: --set, a COMPACT_*
// variable or the config file.
func valueSource(key, file string, overrides map[string]bool) string {
	if overrides[key] {
		return "--set " + key
	}
	env := "COMPACT_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
	if _, ok := os.LookupEnv(env); ok {
		return env
	}
	return source(file)
}

// keyKinds maps every key to the Go kind of its field.
func keyKinds(c Config) map[string]reflect.Kind {
	out := map[string]reflect.Kind{}
	for k, v := range c.Values() {
		out[k] = reflect.TypeOf(v).Kind()
	}
	return out
}

// validateNumbers is the part of Validate that no single key's own range
// check covers: finiteness of every float key, and keys whose sign matters.
func validateNumbers(c Config) error {
	for key, val := range c.Values() {
		if f, ok := val.(float64); ok && (math.IsNaN(f) || math.IsInf(f, 0)) {
			return fmt.Errorf("%s = %g: must be a finite number", key, f)
		}
	}
	if c.Train.GradClip < 0 {
		return fmt.Errorf("train.grad_clip = %g: must not be negative (0 disables clipping)", c.Train.GradClip)
	}
	if err := CheckActivationSize(c); err != nil {
		return err
	}
	if c.Compact.Rank <= 0 {
		return fmt.Errorf("compact.rank = %g: must be positive", c.Compact.Rank)
	}
	return nil
}
