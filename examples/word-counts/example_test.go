package wordcounts_test

import (
	"fmt"

	wordcounts "github.com/stepwise-run/stepwise/examples/word-counts"
)

func ExampleSplit() {
	text := "Title: Tiny\n\nCHAPTER I.\nOne tide.\nCHAPTER II.\nTwo tides, one lamp.\n"
	for _, s := range wordcounts.Split(text) {
		total, counts := wordcounts.CountWords(s.Text)
		fmt.Println(s.Chapter, total, counts["one"])
	}
	fmt.Println(wordcounts.FindTitle(text))
	// Output:
	// CHAPTER I. 2 1
	// CHAPTER II. 4 1
	// Tiny
}
