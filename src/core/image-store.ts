/** What the core needs from image storage (implemented in src/images/). */
export interface ImageStore {
  /** Removes a machine's published link and the images of the given builds. */
  removeMachineImages(serviceTag: string, buildIds: number[]): Promise<void>;
}
