// Swagger UI for Muster's API, from embedded files (no CDN).
window.addEventListener('load', function () {
  SwaggerUIBundle({ url: '/api/v1/openapi.json', dom_id: '#ui', deepLinking: true });
});
