import { ConflictError } from './errors.ts';

/** A machine's place in its lifecycle. */
export type MachineStatus = 'enrolled' | 'configured' | 'building' | 'ready' | 'failed';
export const MACHINE_STATUSES: readonly MachineStatus[] = ['enrolled', 'configured', 'building', 'ready', 'failed'];

/** A build's place in its lifecycle. */
export type BuildStatus = 'pending' | 'building' | 'success' | 'failed' | 'cancelled';
export const BUILD_STATUSES: readonly BuildStatus[] = ['pending', 'building', 'success', 'failed', 'cancelled'];

/**
 * Legal machine transitions. `building` is entered from any resting state when a build is requested;
 * a configured machine goes back to `configured` when its build is cancelled before any image exists.
 */
const MACHINE_TRANSITIONS: Record<MachineStatus, readonly MachineStatus[]> = {
  enrolled: ['configured', 'building'],
  configured: ['building'],
  building: ['ready', 'failed', 'configured', 'enrolled'],
  ready: ['building', 'configured'],
  failed: ['building', 'configured'],
};

const BUILD_TRANSITIONS: Record<BuildStatus, readonly BuildStatus[]> = {
  pending: ['building', 'cancelled', 'failed'],
  // building -> pending: the builder holding it was lost and the build is retried.
  building: ['success', 'failed', 'cancelled', 'pending'],
  success: [],
  failed: [],
  cancelled: [],
};

export function canMachineTransition(from: MachineStatus, to: MachineStatus): boolean {
  return from === to || MACHINE_TRANSITIONS[from].includes(to);
}

export function canBuildTransition(from: BuildStatus, to: BuildStatus): boolean {
  return BUILD_TRANSITIONS[from].includes(to);
}

/** Throws ConflictError unless the machine may go from `from` to `to`. */
export function assertMachineTransition(from: MachineStatus, to: MachineStatus, what: string): void {
  if (!canMachineTransition(from, to)) {
    throw new ConflictError(`${what}: machine cannot go from ${from} to ${to}`);
  }
}

/** Throws ConflictError unless the build may go from `from` to `to`. */
export function assertBuildTransition(from: BuildStatus, to: BuildStatus, what: string): void {
  if (!canBuildTransition(from, to)) {
    throw new ConflictError(`${what}: build cannot go from ${from} to ${to}`);
  }
}

export function isBuildFinished(status: BuildStatus): boolean {
  return status === 'success' || status === 'failed' || status === 'cancelled';
}
