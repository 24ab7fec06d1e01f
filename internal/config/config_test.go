package config

import (
	"strings"
	"testing"
)

func TestMongoMaxBulk(t *testing.T) {
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == "BATCHSYNTH_MONGO_MAX_BULK" {
				return v
			}
			return ""
		}
	}
	c, err := FromEnv(env(""))
	if err != nil || c.MongoMaxBulk != 0 {
		t.Fatalf("unset: %d, %v; want 0 (by server)", c.MongoMaxBulk, err)
	}
	c, err = FromEnv(env("16"))
	if err != nil || c.MongoMaxBulk != 16 {
		t.Fatalf("16: %d, %v", c.MongoMaxBulk, err)
	}
	_, err = FromEnv(env("-1"))
	if err == nil || !strings.Contains(err.Error(), "BATCHSYNTH_MONGO_MAX_BULK") {
		t.Fatalf("-1: error %v, want one naming BATCHSYNTH_MONGO_MAX_BULK", err)
	}
}
