//go:build ignore

// gen_book writes book.txt, the text bundled with the example:
// go generate ./examples/word-counts
package main

import (
	"log"
	"os"

	"github.com/stepwise-run/stepwise/examples/word-counts/internal/bookgen"
)

func main() {
	if err := os.WriteFile("book.txt", bookgen.Generate(), 0o644); err != nil {
		log.Fatal(err)
	}
}
