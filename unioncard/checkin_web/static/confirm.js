// Before what cannot be undone: a button (or its form) with data-confirm asks first, in plain words.
// A static file, so the Content-Security-Policy stays without inline scripts.
document.addEventListener('submit', function (event) {
  var button = event.submitter;
  var question = (button && button.getAttribute('data-confirm')) || event.target.getAttribute('data-confirm');
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
}, true);
