// kubegate web UI: start the asciinema player on elements that name a recording. No inline scripts (CSP).
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  for (const element of document.querySelectorAll("[data-cast-src]")) {
    if (!window.AsciinemaPlayer) {
      element.textContent = "The asciinema player is not installed on this kubegate (npm ci); download the asciicast instead.";
      continue;
    }
    window.AsciinemaPlayer.create(element.dataset.castSrc, element, {
      fit: "width", idleTimeLimit: 2, terminalFontSize: "small", preload: true,
    });
  }
});
