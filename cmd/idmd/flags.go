package main

import (
	"errors"
	"flag"
	"regexp"
	"time"
)

// onceValue is a flag that takes one value and may be given once: a
// second value would silently win otherwise.
type onceValue struct {
	flag.Value
	set, twice bool
}

func (o *onceValue) Set(v string) error {
	if o.set {
		o.twice = true
		return errors.New("given twice")
	}
	o.set = true
	if err := o.Value.Set(v); err != nil {
		// The flag package's own values fail with "parse error".
		if g, ok := o.Value.(flag.Getter); ok {
			switch g.Get().(type) {
			case time.Duration:
				return errors.New("want a duration such as 10s or 1m30s")
			case int:
				return errors.New("want a whole number")
			}
		}
		return err
	}
	return nil
}

// onlyOnce makes every flag of fs that takes a value, but the repeatable
// ones, refuse a second value.
func onlyOnce(fs *flag.FlagSet, repeatable ...string) {
	fs.VisitAll(func(f *flag.Flag) {
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
			return
		}
		for _, r := range repeatable {
			if f.Name == r {
				return
			}
		}
		f.Value = &onceValue{Value: f.Value}
	})
}

// flagInMessage finds a flag named in one of the flag package's errors.
var flagInMessage = regexp.MustCompile(`(flag needs an argument: |for flag |for )-([a-z][a-z-]+)`)

// flagMessage is the line that says what is wrong with a command line
// fs could not parse: a flag given twice, or the flag package's error
// with the flags spelled as the usage spells them (--socket, where the
// package writes -socket).
func flagMessage(fs *flag.FlagSet, err error) string {
	var twice string
	fs.Visit(func(f *flag.Flag) {
		if o, ok := f.Value.(*onceValue); ok && o.twice {
			twice = f.Name
		}
	})
	if twice != "" {
		return "--" + twice + " given twice"
	}
	msg := flagInMessage.ReplaceAllStringFunc(err.Error(), func(m string) string {
		sub := flagInMessage.FindStringSubmatch(m)
		if fs.Lookup(sub[2]) == nil {
			return m
		}
		return sub[1] + "--" + sub[2]
	})
	// "parse error" is all the package says of a bad boolean.
	return badBool.ReplaceAllString(msg, "$2 takes no value, or true or false, not $1")
}

// badBool is the flag package's error for a bad boolean value.
var badBool = regexp.MustCompile(`^invalid boolean value ("[^"]*") for (-[-a-z]+): parse error$`)
