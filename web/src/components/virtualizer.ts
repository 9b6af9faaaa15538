/**
 * A TanStack virtualizer for a Vue component, updated after Vue has rendered.
 *
 * `@tanstack/vue-virtual` (3.13) runs the virtualizer's update in the same pre-render watcher
 * that sets its options. An end-anchored list (`anchorTo: 'end'`) writes its scroll
 * correction in that update, so after a page of older messages is prepended the correction was
 * written while the list still had its old height, the browser clamped it, and the view jumped.
 * React's adapter runs the update after the commit (a layout effect); this does the same, in a
 * `flush: 'post'` watcher.
 */
import {
  Virtualizer,
  elementScroll,
  observeElementOffset,
  observeElementRect,
  type PartialKeys,
  type VirtualizerOptions,
} from '@tanstack/virtual-core'
import { onScopeDispose, shallowRef, triggerRef, watch, type Ref, type ShallowRef } from 'vue'

export type ElementOptions<S extends Element, I extends Element> = PartialKeys<
  VirtualizerOptions<S, I>,
  'observeElementRect' | 'observeElementOffset' | 'scrollToFn'
>

export function useVirtualizer<S extends Element, I extends Element>(
  options: Ref<ElementOptions<S, I>>,
): ShallowRef<Virtualizer<S, I>> {
  const full = (): VirtualizerOptions<S, I> => ({
    observeElementRect,
    observeElementOffset,
    scrollToFn: elementScroll,
    ...options.value,
    onChange: () => triggerRef(state),
  })
  const virtualizer = new Virtualizer<S, I>(full())
  const state = shallowRef(virtualizer)
  const cleanup = virtualizer._didMount()
  watch(options, () => {
    virtualizer.setOptions(full())
    triggerRef(state)
  })
  watch([options, () => options.value.getScrollElement()], () => virtualizer._willUpdate(), {
    flush: 'post',
    immediate: true,
  })
  onScopeDispose(cleanup)
  return state
}
