/**
 * A builder that cannot start on this host; the message names the setting and what to do. Alone,
 * `metal builder` exits with it; beside other roles (`metal serve`) it is logged and the rest runs.
 */
export class BuilderCannotStart extends Error {}
