import { useEffect, useRef, useState } from 'preact/hooks';

/**
 * Windowing by scroll position for lists of fixed-height rows: only the rows in view (plus a margin)
 * are rendered; spacers above and below keep the scrollbar honest. Attach `ref` and `onScroll` to the
 * scrolling element.
 */
export function useWindow(rowHeight: number, count: number, overscan = 10) {
  const ref = useRef<HTMLDivElement>(null);
  const [top, setTop] = useState(0);
  const [height, setHeight] = useState(800);
  useEffect(() => {
    const el = ref.current;
    if (!el) return;
    setHeight(el.clientHeight || 800);
    const ro = new ResizeObserver(() => setHeight(el.clientHeight || 800));
    ro.observe(el);
    return () => ro.disconnect();
  }, []);
  const start = Math.max(0, Math.floor(top / rowHeight) - overscan);
  const end = Math.min(count, Math.ceil((top + height) / rowHeight) + overscan);
  return {
    ref,
    onScroll: (e: Event) => setTop((e.currentTarget as HTMLElement).scrollTop),
    start,
    end,
    padTop: start * rowHeight,
    padBottom: Math.max(0, (count - end) * rowHeight),
  };
}

export const collator = new Intl.Collator(undefined, { numeric: true });
