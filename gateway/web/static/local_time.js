// Tell the gateway the browser's time zone, so pages show times in the viewer's zone (gateway/web/pages.py
// viewer_zone). Set once; a change (travel, a new laptop) is picked up on the next page.
const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
if (zone && !document.cookie.split("; ").includes("sohogw_tz=" + encodeURIComponent(zone))) {
  document.cookie = "sohogw_tz=" + encodeURIComponent(zone) + "; path=/; max-age=31536000; samesite=lax";
}
