package main

import (
	"github.com/spf13/cobra"
)

func newEstimateCmd() *cobra.Command {
	return &cobra.Command{Use: "estimate", Short: "Estimate the cost of a words file before spending it", Hidden: true}
}
