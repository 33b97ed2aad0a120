// A Guacamole (RDP) seat behind the surface of noVNC's RFB that seat_viewer.js drives: "connect" and "disconnect"
// events and `scaleViewport`. The RDP seat page thereby gets SeatViewer's bar, watermark and reconnection as it is,
// instead of a copy of them.
//
// Guacamole.Client reports a seat that ends with an `error` instruction (guacamole-lite's 523 when the gateway says
// the launch is over), but not a websocket that just closes (a Wi-Fi drop, a guacamole-lite or gateway restart): it
// watches neither the tunnel's state nor its errors, and would stay "connected" for ever. This watches the tunnel.
// The page's own module creates the Guacamole objects it passes in, so how guacamole-common-js is loaded stays in the
// template, as noVNC's does.

const CONNECTED = 3, DISCONNECTED = 5;  // Guacamole.Client.State

export class GuacamoleSeat extends EventTarget {
  constructor(Guacamole, screen, websocketUrl, parameters) {
    super();
    this.tunnel = new Guacamole.WebSocketTunnel(websocketUrl);
    this.client = new Guacamole.Client(this.tunnel);
    this.display = this.client.getDisplay();
    this.scaling = false;
    // As noVNC's own screen element: filling the stage's screen, with the picture centred in it.
    this.frame = document.createElement("div");
    Object.assign(this.frame.style, {display: "flex", width: "100%", height: "100%", overflow: "hidden"});
    this.picture = this.display.getElement();
    this.picture.style.margin = "auto";
    // What seat_viewer.js fits the watermark to: this element takes the picture's scaled size, while the canvases
    // inside it keep the seat's own size under a CSS transform.
    this.picture.dataset.seatPicture = "";
    this.frame.appendChild(this.picture);
    screen.appendChild(this.frame);
    this.fitObserver = new ResizeObserver(() => this.fit());
    this.fitObserver.observe(this.frame);
    this.display.onresize = () => this.fit();
    // Keyboard input is the page's (one Guacamole.Keyboard for every connection); the mouse is this picture's.
    // Guacamole.Mouse gives positions in the scaled picture's pixels: sendMouseState(…, true) divides them by the
    // display's scale, so a click lands on the seat where it was seen.
    const mouse = new Guacamole.Mouse(this.picture);
    mouse.onEach(["mousedown", "mouseup", "mousemove"], (event) => this.client.sendMouseState(event.state, true));
    window.guacamoleState = 0;  // read by the tests and benches that wait for the RDP session's first frame
    this.client.onstatechange = (state) => this.stateChanged(state);
    this.tunnel.onstatechange = (state) => {
      if (state === Guacamole.Tunnel.State.CLOSED) this.client.disconnect();
    };
    this.client.connect(new URLSearchParams(parameters).toString());
  }

  stateChanged(state) {
    window.guacamoleState = state;
    if (state === CONNECTED) {
      this.dispatchEvent(new Event("connect"));
    } else if (state === DISCONNECTED) {
      this.fitObserver.disconnect();
      this.frame.remove();  // as noVNC removes its screen: a reconnection brings a picture of its own
      this.dispatchEvent(new Event("disconnect"));
    }
  }

  disconnect() {
    this.client.disconnect();
  }

  // noVNC's scaleViewport: the seat's whole picture in the stage at any window size, larger or smaller.
  set scaleViewport(on) {
    this.scaling = on;
    this.fit();
  }

  get scaleViewport() {
    return this.scaling;
  }

  fit() {
    const width = this.display.getWidth(), height = this.display.getHeight();
    if (!width || !height) return;
    const scale = this.scaling ? Math.min(this.frame.clientWidth / width, this.frame.clientHeight / height) : 1;
    if (scale > 0) this.display.scale(scale);
  }
}
