/* Runs every suite; prints one line per test and the closing "N passed, N failed" line. */
#include "test.h"

int test_failures, test_checks;

extern const struct test_case memmap_tests[], pagetable_tests[], cmdline_tests[], vmmcall_tests[], bootinfo_tests[];
extern const struct test_case policy_tests[], ata_tests[], fwcfg_tests[], iommu_tests[], amdvi_tests[];
extern const struct test_case xts_tests[];
extern const struct test_case gwalk_tests[], decode_tests[], emulate_tests[], io_tests[], pci_tests[], apic_tests[],
    linux_tests[];
extern const struct test_case acpi_pm_tests[], cpuid_tests[], nmi_tests[], ahci_tests[], vstate_tests[];

int main(void)
{
	const struct test_case *suites[] = { memmap_tests, pagetable_tests, cmdline_tests, bootinfo_tests,
		vmmcall_tests, policy_tests, ata_tests, fwcfg_tests, iommu_tests, amdvi_tests, xts_tests, gwalk_tests,
		decode_tests, emulate_tests, io_tests, pci_tests, apic_tests, linux_tests, acpi_pm_tests, cpuid_tests,
		nmi_tests, ahci_tests, vstate_tests };
	int passed = 0, failed = 0;
	for (unsigned s = 0; s < sizeof(suites) / sizeof(suites[0]); s++) {
		for (const struct test_case *t = suites[s]; t->name; t++) {
			int before = test_failures;
			t->fn();
			int ok = test_failures == before;
			printf("%s - %s\n", ok ? "ok" : "FAIL", t->name);
			ok ? passed++ : failed++;
		}
	}
	printf("unit: %d passed, %d failed (%d checks)\n", passed, failed, test_checks);
	return failed != 0;
}
