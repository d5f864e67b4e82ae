#include "test.h"
#include "boot/cmdline.h"
#include <string.h>

static void defaults_and_loader_path(void)
{
	struct hv_config c;
	char err[128];
	CHECK(cmdline_parse("", &c, err, sizeof(err)));
	CHECK_EQ(c.log.sink, LOG_SINK_E9);
	CHECK_EQ(c.boot_drive, 0x80);
	CHECK(cmdline_parse(NULL, &c, err, sizeof(err)));
	CHECK(cmdline_parse("/boot/parapet.elf  log=none", &c, err, sizeof(err)));
	CHECK_EQ(c.log.sink, LOG_SINK_NONE);
}

static void sinks_and_drives(void)
{
	struct hv_config c;
	char err[128];
	static const unsigned short ports[] = { 0x3F8, 0x2F8, 0x3E8, 0x2E8 };
	for (int i = 0; i < 4; i++) {
		char line[32];
		snprintf(line, sizeof(line), "log=com%d", i + 1);
		CHECK(cmdline_parse(line, &c, err, sizeof(err)));
		CHECK_EQ(c.log.sink, LOG_SINK_COM);
		CHECK_EQ(c.log.com_port, ports[i]);
	}
	CHECK(cmdline_parse("log=e9 boot=0x81", &c, err, sizeof(err)));
	CHECK_EQ(c.boot_drive, 0x81);
	CHECK(cmdline_parse("boot=128", &c, err, sizeof(err)));
	CHECK_EQ(c.boot_drive, 0x80);
	CHECK(!c.iommu_to_guest);
	CHECK(cmdline_parse("iommu=guest", &c, err, sizeof(err)));
	CHECK(c.iommu_to_guest);
	CHECK(cmdline_parse("iommu=on", &c, err, sizeof(err)));
	CHECK(!c.iommu_to_guest);
}

static void errors_name_the_option(void)
{
	struct hv_config c;
	char err[128];
	CHECK(!cmdline_parse("log=com5", &c, err, sizeof(err)));
	CHECK(strstr(err, "log=com5") != NULL);
	CHECK(!cmdline_parse("log=", &c, err, sizeof(err)));
	CHECK(!cmdline_parse("boot=0x100", &c, err, sizeof(err)));
	CHECK(strstr(err, "boot=0x100") != NULL);
	CHECK(!cmdline_parse("boot=zz", &c, err, sizeof(err)));
	CHECK(!cmdline_parse("iommu=off", &c, err, sizeof(err)));
	CHECK(strstr(err, "iommu=off") != NULL);
	CHECK(!cmdline_parse("log=e9 frobnicate=1", &c, err, sizeof(err)));
	CHECK(strstr(err, "frobnicate") != NULL);
	CHECK(!cmdline_parse("log=e9 stray", &c, err, sizeof(err)));
	CHECK(strstr(err, "stray") != NULL);
	/* A tiny error buffer is never overrun. */
	char tiny[4];
	CHECK(!cmdline_parse("unknown=1", &c, tiny, sizeof(tiny)));
	CHECK_EQ(strlen(tiny), 3);
}

TESTS(cmdline_tests) = {
	{ "cmdline: defaults, loader path skipped", defaults_and_loader_path },
	{ "cmdline: log sinks and boot drive", sinks_and_drives },
	{ "cmdline: errors name the bad option", errors_name_the_option },
	{ NULL, NULL },
};
