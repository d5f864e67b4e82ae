/* libFuzzer: any sequence of task-file writes and commands, through the command tracking. */
#include "drivers/ata/ata_cmd.h"
#include "drivers/ata/ata.h"
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const u8 *data, size_t size)
{
	struct ata_taskfile tf = { 0 };
	for (size_t i = 0; i + 1 < size; i += 2) {
		unsigned reg = data[i] & 7;
		u8 val = data[i + 1];
		if (reg != ATA_REG_COMMAND) {
			ata_tf_write(&tf, reg, val);
			continue;
		}
		struct ata_cmd_info info = ata_classify(val, tf.feature[0]);
		if (info.kind > ATA_DMA_OUT)
			abort();
		u64 lba;
		u32 count;
		if (!ata_tf_range(&tf, info.lba48, &lba, &count))
			continue;
		if (count < 1 || count > (info.lba48 ? 65536u : 256u))
			abort();
		if (lba >= (info.lba48 ? 1ull << 48 : 1ull << 28))
			abort();
	}
	return 0;
}
