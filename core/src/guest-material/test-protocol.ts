// How a test talks to the test initramfs's /init (scripts/guest/init; README in scripts/guest):
// the script goes in on the kernel command line (vireo.test=<base64>) or on a test disk holding
// a tar archive (vireo.testdisk=vda); the results come back as marker lines on the console.

/** Printed on its own line once /init has mounted the basics and loaded modules. */
export const INIT_READY_MARKER = 'VIREO-INIT-READY';
/** Followed by the test script's exit status, e.g. VIREO-TEST-EXIT=0; then the guest powers off. */
export const TEST_EXIT_PREFIX = 'VIREO-TEST-EXIT=';
/** The interactive shell's prompt: busybox asks for the cursor position (ESC[6n) after each one. */
export const SHELL_PROMPT = new RegExp(`# (${String.fromCharCode(27)}\\[6n)?$`, 'm');
/** The status /init reports when it could not start the test (bad base64, no disk, no script). */
export const TEST_NOT_STARTED_STATUS = 125;
/** The script /init runs from a test disk's archive, with the archive's folder as working directory. */
export const TEST_DISK_SCRIPT = 'vireo-test.sh';

/**
 * x86 kernels keep 2048 bytes of command line (COMMAND_LINE_SIZE); the rest of the line needs
 * room too. Scripts that do not fit go on a test disk.
 */
export const MAX_TEST_PARAMETER_LENGTH = 1536;

/** The kernel command-line parameter that hands /init a shell script. */
export function testScriptParameter(script: string): string {
  // /init takes an empty vireo.test= for no test at all and would start a shell.
  if (script.trim() === '') throw new RangeError('empty test script');
  const parameter = `vireo.test=${Buffer.from(script, 'utf8').toString('base64')}`;
  if (parameter.length > MAX_TEST_PARAMETER_LENGTH) {
    throw new RangeError(
      `test script too long for the kernel command line (${parameter.length} > ${MAX_TEST_PARAMETER_LENGTH} bytes encoded): put it on a test disk`,
    );
  }
  return parameter;
}

/** The kernel command-line parameter that makes /init run vireo-test.sh from a tar on `device`. */
export function testDiskParameter(device = 'vda'): string {
  if (!/^[a-z0-9]+$/.test(device)) throw new RangeError(`not a block device name: ${device}`);
  return `vireo.testdisk=${device}`;
}

/** The exit status of the test in console output, or undefined if it has not finished. */
export function parseTestExit(output: string): number | undefined {
  let status: number | undefined;
  for (const match of output.matchAll(/^VIREO-TEST-EXIT=(\d+)\r?$/gm)) status = Number(match[1]);
  return status;
}

/** Whether /init has printed its ready marker on a line of its own. */
export function initReady(output: string): boolean {
  return /^VIREO-INIT-READY\r?$/m.test(output);
}

const BLOCK = 512;

/**
 * A raw disk image for a test disk: a ustar archive of `files` (path -> contents), padded to
 * whole 512-byte sectors. Folders named in paths get their own entries. `vireo-test.sh` must be
 * among the files for /init to run anything.
 */
export function testDiskImage(files: Record<string, string | Uint8Array>): Uint8Array {
  const blocks: Uint8Array[] = [];
  const folders = new Set<string>();
  for (const [path, contents] of Object.entries(files)) {
    if (path.startsWith('/') || path.split('/').some((part) => part === '..' || part === '')) {
      throw new RangeError(`test disk paths must be relative and plain: ${path}`);
    }
    const parts = path.split('/');
    for (let i = 1; i < parts.length; i++) {
      const folder = `${parts.slice(0, i).join('/')}/`;
      if (!folders.has(folder)) {
        folders.add(folder);
        blocks.push(ustarHeader(folder, 0o755, 0, '5'));
      }
    }
    const data = typeof contents === 'string' ? new TextEncoder().encode(contents) : contents;
    blocks.push(ustarHeader(path, path.endsWith('.sh') ? 0o755 : 0o644, data.length, '0'));
    const padded = new Uint8Array(Math.ceil(data.length / BLOCK) * BLOCK);
    padded.set(data);
    blocks.push(padded);
  }
  blocks.push(new Uint8Array(2 * BLOCK)); // end of archive
  const image = new Uint8Array(blocks.reduce((n, b) => n + b.length, 0));
  let at = 0;
  for (const block of blocks) {
    image.set(block, at);
    at += block.length;
  }
  return image;
}

function ustarHeader(name: string, mode: number, size: number, type: '0' | '5'): Uint8Array {
  const header = new Uint8Array(BLOCK);
  const put = (offset: number, length: number, text: string) => {
    const bytes = new TextEncoder().encode(text);
    if (bytes.length > length) throw new RangeError(`tar field too long: ${text}`);
    header.set(bytes, offset);
  };
  const octal = (value: number, length: number) => `${value.toString(8).padStart(length - 1, '0')}\0`;
  put(0, 100, name);
  put(100, 8, octal(mode, 8));
  put(108, 8, octal(0, 8));
  put(116, 8, octal(0, 8));
  put(124, 12, octal(size, 12));
  put(136, 12, octal(0, 12));
  put(148, 8, '        '); // the checksum counts its own field as spaces
  put(156, 1, type);
  put(257, 6, 'ustar\0');
  put(263, 2, '00');
  put(265, 32, 'root');
  put(297, 32, 'root');
  const checksum = header.reduce((sum, byte) => sum + byte, 0);
  put(148, 8, `${checksum.toString(8).padStart(6, '0')}\0 `);
  return header;
}
