/** A lifecycle: for each state, the states it may move to. Terminal states map to an empty list. */
export type StateMachine<S extends string> = Readonly<Record<S, readonly S[]>>;

export function canTransition<S extends string>(machine: StateMachine<S>, from: S, to: S): boolean {
  return from === to || machine[from].includes(to);
}

/** The sentence an illegal transition answers with (409), naming the allowed next states. */
export function transitionRefusal<S extends string>(machine: StateMachine<S>, entity: string, from: S, to: S): string {
  const allowed = machine[from];
  const next = allowed.length === 0 ? `${from} is final` : `allowed next states: ${allowed.join(", ")}`;
  return `${entity} cannot move from ${from} to ${to}; ${next}`;
}
