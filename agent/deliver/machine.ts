// Which machine this agent runs on: the server ties an identity to one machine-id and notices
// when a second machine uses it (a copied agent.json, an image cloned with its identity).
import { readFile } from 'node:fs/promises';
import { bootIdSchema, machineIdSchema } from '../../shared/protocol.js';

export const MACHINE_ID_FILE = '/etc/machine-id';
export const BOOT_ID_FILE = '/proc/sys/kernel/random/boot_id';

export interface MachineFacts {
  machineId?: string;
  bootId?: string;
}

/**
 * The machine-id and boot id, each left out when missing or not valid (an image whose
 * machine-id is still empty or "uninitialized", a system without /proc).
 */
export async function readMachineFacts(files: { machineId?: string; bootId?: string } = {}): Promise<MachineFacts> {
  const [machineId, bootId] = await Promise.all([
    readValid(files.machineId ?? MACHINE_ID_FILE, machineIdSchema),
    readValid(files.bootId ?? BOOT_ID_FILE, bootIdSchema),
  ]);
  return { ...(machineId === undefined ? {} : { machineId }), ...(bootId === undefined ? {} : { bootId }) };
}

async function readValid(file: string, schema: typeof machineIdSchema): Promise<string | undefined> {
  const text = await readFile(file, 'utf8').catch(() => '');
  const parsed = schema.safeParse(text.trim());
  return parsed.success ? parsed.data : undefined;
}
