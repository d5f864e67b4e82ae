// What the commands of the `parapet` CLI share (src/commands/ never import each other): the
// exit statuses they document.

/** Refused: nothing was changed (parapet disk, parapet luks). */
export const EXIT_REFUSED = 2;
/** parapet disk verify found a problem. */
export const EXIT_VERIFY_FAILED = 3;
/** Interrupted by Ctrl-C; the same command resumes. */
export const EXIT_INTERRUPTED = 130;
