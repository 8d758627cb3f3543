// Camera scanning for the hand-out page: where the browser has BarcodeDetector (Chrome on
// Android), a button opens the camera and each code read is added as a line to the numbers box.
// Keyboard-wedge scanners need nothing: they type the number and Enter into the box.
(function () {
  "use strict";
  var button = document.getElementById("camera");
  var box = document.getElementById("numbers");
  var video = document.getElementById("preview");
  if (!button || !box || !("BarcodeDetector" in window) || !navigator.mediaDevices) { return; }
  button.hidden = false;
  button.addEventListener("click", function () {
    var detector = new window.BarcodeDetector({formats: ["qr_code", "code_128", "ean_13"]});
    var seen = {};
    navigator.mediaDevices.getUserMedia({video: {facingMode: "environment"}}).then(function (stream) {
      video.srcObject = stream; video.hidden = false; video.play();
      function tick() {
        detector.detect(video).then(function (codes) {
          codes.forEach(function (code) {
            if (!seen[code.rawValue]) {
              seen[code.rawValue] = true;
              box.value = (box.value.trim() ? box.value.trim() + "\n" : "") + code.rawValue;
            }
          });
          if (!video.hidden) { window.setTimeout(tick, 250); }
        });
      }
      tick();
    });
  });
}());
