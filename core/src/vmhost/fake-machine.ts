// A stand-in for Machine in the VM host, for tests of the supervisor and the API that must not
// depend on KVM or on a guest booting (VIREO_FAKE_MACHINE=1 in the host's environment). Its
// "guest" echoes console input back, prints a banner, powers off when the power button is
// pressed (unless its command line says `fake.ignore-power-button`), powers off when it reads
// the line "poweroff", reboots (printing its banner again) on the line "reboot", and shows a
// BREAK on its serial line as "[break]".

import { readFileSync } from 'node:fs';
import type { MachineConfig } from '../machine/config.js';
import type { MachineExit, MachineIo } from '../machine/machine.js';

export class FakeMachine {
  private finish: ((exit: MachineExit) => void) | undefined;
  private readonly done: Promise<MachineExit>;
  private paused = false;
  private line = '';

  private constructor(
    readonly config: MachineConfig,
    private readonly io: MachineIo,
  ) {
    this.done = new Promise((resolve) => {
      this.finish = resolve;
    });
  }

  static async create(config: MachineConfig, io: MachineIo): Promise<FakeMachine> {
    readFileSync(config.kernel);
    return new FakeMachine(config, io);
  }

  run(): Promise<MachineExit> {
    this.boot();
    return this.done;
  }

  private boot(): void {
    setTimeout(() => this.output(`fake guest: ${this.config.cpus} CPU(s)\r\nfake# `), 10);
  }

  sendConsoleInput(bytes: Uint8Array): void {
    if (this.paused) return;
    for (const byte of bytes) {
      const char = String.fromCharCode(byte);
      if (char === '\r' || char === '\n') {
        this.output('\r\n');
        if (this.line === 'poweroff') this.end({ reason: 'poweroff' });
        else if (this.line === 'crash') process.kill(process.pid, 'SIGKILL');
        else if (this.line === 'reboot') this.reboot('guest reset the machine');
        else this.output('fake# ');
        this.line = '';
      } else {
        this.line += char;
        this.output(char);
      }
    }
  }

  sendConsoleBreak(): boolean {
    if (this.config.console === 'virtio') return false;
    if (!this.paused) this.output('[break]');
    return true;
  }

  pressPowerButton(): void {
    if (this.config.cmdline.includes('fake.ignore-power-button')) return;
    setTimeout(() => this.end({ reason: 'poweroff' }), 20);
  }

  async pause(): Promise<void> {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
  }

  async reset(): Promise<void> {
    this.reboot('reset by the VMM');
  }

  private reboot(message: string): void {
    this.paused = false;
    this.line = '';
    this.io.onReboot?.(message);
    this.boot();
  }

  async stop(): Promise<void> {
    this.end({ reason: 'stopped' });
  }

  private output(text: string): void {
    this.io.onConsoleOutput(Buffer.from(text));
  }

  private end(exit: MachineExit): void {
    this.finish?.(exit);
    this.finish = undefined;
  }
}
