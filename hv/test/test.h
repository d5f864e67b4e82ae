/* A minimal unit-test harness: CHECK records failures; main() in test_main.c runs every suite. */
#ifndef PARAPET_TEST_H
#define PARAPET_TEST_H

#include <stdio.h>

extern int test_failures, test_checks;

#define CHECK(cond)                                                                              \
	do {                                                                                     \
		test_checks++;                                                                   \
		if (!(cond)) {                                                                   \
			test_failures++;                                                         \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
		}                                                                                \
	} while (0)

#define CHECK_EQ(a, b)                                                                                              \
	do {                                                                                                        \
		unsigned long long _a = (unsigned long long)(a), _b = (unsigned long long)(b);                      \
		test_checks++;                                                                                      \
		if (_a != _b) {                                                                                     \
			test_failures++;                                                                            \
			fprintf(stderr, "%s:%d: %s == %s failed: %#llx != %#llx\n", __FILE__, __LINE__, #a, #b, _a, \
			    _b);                                                                                    \
		}                                                                                                   \
	} while (0)

struct test_case {
	const char *name;
	void (*fn)(void);
};

#define TESTS(suite) const struct test_case suite[]

#endif
