"""An accessibility smoke check run inside the page (no axe-core: nothing to vendor or download).

It covers what a person on a screen reader, a keyboard or a small screen meets first:
- ``<html lang>`` is a language tag and the page has a non-empty ``<title>``;
- exactly one ``main`` landmark and one ``<h1>``, and all visible text inside landmarks;
- every form control has a label (``<label for>``, a wrapping label, ``aria-label`` or
  ``aria-labelledby``; a placeholder is not a label);
- every link and button has an accessible name, every image an ``alt``;
- every visible piece of text has a contrast of at least 4.5:1 against what is behind it
  (colours with alpha and ``opacity`` are composited over the real backgrounds).
"""

from __future__ import annotations

from typing import Any

MIN_CONTRAST = 4.5

_CHECK_JS = r"""
(minContrast) => {
  const problems = [];
  const describe = (el) => {
    const text = (el.innerText || el.getAttribute('aria-label') || el.getAttribute('name') || '').trim();
    return `<${el.tagName.toLowerCase()}${el.id ? '#' + el.id : ''}> ${JSON.stringify(text.slice(0, 40))}`;
  };
  const visible = (el) => {
    const style = getComputedStyle(el);
    const box = el.getBoundingClientRect();
    return style.display !== 'none' && style.visibility !== 'hidden' && box.width > 0 && box.height > 0;
  };
  const byIds = (ids) => ids.split(/\s+/).map((id) => {
    const target = document.getElementById(id);
    return target ? target.textContent : '';
  }).join(' ').trim();

  // Language and title.
  const lang = document.documentElement.getAttribute('lang') || '';
  if (!/^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$/.test(lang)) problems.push(`<html lang> is ${JSON.stringify(lang)}`);
  if (!document.title.trim()) problems.push('the page has no <title>');

  // Landmarks and headings.
  const mains = document.querySelectorAll('main, [role="main"]');
  if (mains.length !== 1) problems.push(`expected one main landmark, found ${mains.length}`);
  const h1s = document.querySelectorAll('h1');
  if (h1s.length !== 1) problems.push(`expected one <h1>, found ${h1s.length}`);
  const landmarks = 'main, [role="main"], header, footer, nav, aside, [role="banner"], [role="contentinfo"], [role="navigation"], [role="complementary"]';
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const parent = node.parentElement;
    if (node.textContent.trim() && parent && visible(parent) && !parent.closest(landmarks)) {
      problems.push(`text outside any landmark: ${describe(parent)}`);
    }
  }

  // Form controls have labels.
  const controls = document.querySelectorAll('input:not([type="hidden"]):not([type="submit"]):not([type="button"]):not([type="reset"]), select, textarea');
  for (const control of controls) {
    let name = '';
    if (control.getAttribute('aria-labelledby')) name = byIds(control.getAttribute('aria-labelledby'));
    if (!name && control.getAttribute('aria-label')) name = control.getAttribute('aria-label').trim();
    if (!name && control.labels) name = [...control.labels].map((label) => label.textContent).join(' ').trim();
    if (!name) problems.push(`form control without a label: ${describe(control)}`);
  }

  // Links and buttons have names; images have alt.
  const actionable = document.querySelectorAll('a[href], button, input[type="submit"], input[type="button"], [role="button"]');
  for (const el of actionable) {
    let name = '';
    if (el.getAttribute('aria-labelledby')) name = byIds(el.getAttribute('aria-labelledby'));
    if (!name && el.getAttribute('aria-label')) name = el.getAttribute('aria-label').trim();
    if (!name && el.tagName === 'INPUT') name = (el.value || '').trim();
    if (!name) name = (el.innerText || '').trim();
    if (!name) name = [...el.querySelectorAll('img[alt]')].map((img) => img.alt).join(' ').trim();
    if (!name) problems.push(`link or button without an accessible name: ${describe(el)}`);
  }
  for (const img of document.querySelectorAll('img')) {
    if (!img.hasAttribute('alt')) problems.push(`image without alt: ${img.src.slice(0, 40)}`);
  }

  // Contrast of every visible text against its composited background.
  const parse = (value) => {
    const m = value.match(/^rgba?\(\s*([\d.]+)[,\s]+([\d.]+)[,\s]+([\d.]+)(?:\s*[,/]\s*([\d.]+%?))?\s*\)$/);
    if (!m) return null;
    let alpha = m[4] === undefined ? 1 : parseFloat(m[4]);
    if (m[4] && m[4].endsWith('%')) alpha /= 100;
    return [parseFloat(m[1]), parseFloat(m[2]), parseFloat(m[3]), alpha];
  };
  const over = (top, bottom) => [0, 1, 2].map((i) => top[i] * top[3] + bottom[i] * (1 - top[3])).concat([1]);
  const luminance = (rgb) => {
    const lin = rgb.slice(0, 3).map((c) => {
      const s = c / 255;
      return s <= 0.03928 ? s / 12.92 : Math.pow((s + 0.055) / 1.055, 2.4);
    });
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2];
  };
  const backgroundOf = (el) => {
    // Background layers from the element up to the root, then painted bottom-up on white.
    const layers = [];
    for (let node = el; node; node = node.parentElement) {
      const style = getComputedStyle(node);
      if (style.backgroundImage && style.backgroundImage !== 'none') return { unknown: describe(node) };
      const colour = parse(style.backgroundColor);
      if (colour === null) return { unknown: `${describe(node)} background ${style.backgroundColor}` };
      if (colour[3] > 0) layers.push(colour);
    }
    let painted = [255, 255, 255, 1];
    for (const layer of layers.reverse()) painted = over(layer, painted);
    return { colour: painted };
  };
  const opacityOf = (el) => {
    let opacity = 1;
    for (let node = el; node; node = node.parentElement) opacity *= parseFloat(getComputedStyle(node).opacity);
    return opacity;
  };
  let checked = 0;
  for (const el of document.body.querySelectorAll('*')) {
    const ownText = [...el.childNodes].some((n) => n.nodeType === Node.TEXT_NODE && n.textContent.trim());
    if (!ownText || !visible(el)) continue;
    const style = getComputedStyle(el);
    const fg = parse(style.color);
    const bg = backgroundOf(el);
    if (fg === null || bg.unknown) {
      problems.push(`cannot tell the contrast of ${describe(el)}: ${fg === null ? style.color : bg.unknown}`);
      continue;
    }
    fg[3] *= opacityOf(el);
    const text = over(fg, bg.colour);
    const [hi, lo] = [luminance(text), luminance(bg.colour)].sort((a, b) => b - a);
    const ratio = (hi + 0.05) / (lo + 0.05);
    checked += 1;
    if (ratio < minContrast) problems.push(`contrast ${ratio.toFixed(2)}:1 below ${minContrast}:1 for ${describe(el)}`);
  }
  if (checked === 0) problems.push('no visible text found to check');
  return problems;
}
"""


def accessibility_problems(page: Any, min_contrast: float = MIN_CONTRAST) -> list[str]:
    """Everything the smoke check finds wrong with the page as currently shown (empty = pass)."""
    return page.evaluate(_CHECK_JS, min_contrast)
