// Writing a buffer to a file whole: the one loop every durable file in sluice (the audit log,
// its ledger, the file sink and the dead-letter file) appends with.
import type { FileHandle } from 'node:fs/promises';

/**
 * Writes all of `data`: FileHandle.write() is one write(2), which may write part of it and
 * succeed (a nearly full disk). Looping makes the short write surface as the error it is (ENOSPC)
 * instead of a record acknowledged half on disk.
 */
export async function writeFully(handle: FileHandle, data: Uint8Array): Promise<void> {
  for (let offset = 0; offset < data.length; ) {
    const { bytesWritten } = await handle.write(data, offset, data.length - offset);
    if (bytesWritten <= 0) throw new Error(`a write made no progress at byte ${offset} of ${data.length}`);
    offset += bytesWritten;
  }
}
