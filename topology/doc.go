// Package topology turns workflow definition files (YAML) into validated,
// compiled workflow graphs and the plan of Kafka topics they need.
//
// # Where it sits
//
// It is the first stage of the data flow and is pure: no I/O besides reading
// the files it is given. The processors compile definitions with it to know
// which step runs after which; `stepwise topics` asks it for the topic plan;
// `stepwise validate` and `stepwise graph` print what it finds.
//
// # Format
//
// The format of the original RabbitMQ workflow manager loads unchanged:
//
//	workflows:
//	  - name: book-word-counts
//	    steps:
//	      - name: book-split
//	      - name: section-counts
//	        task: word-counts
//	        depends: [ book-split ]
//	    tasks:
//	      - name: word-counts
//	        itemListKey: sections
//	        steps:
//	          - name: segment-word-counts
//
// A step without depends starts with the request (it depends on __start__);
// a graph ends when every step is done (__end__ depends on every step that
// nothing else depends on). Extensions (retry, timeout, defaults, nested
// tasks) are described on the types in model.go.
package topology
