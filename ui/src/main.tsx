/** Entry point of the dashboard bundle (ui/build.mjs): the style sheet and the app. */
import { render } from 'preact';
import { App } from './app.js';
import './style.css';

render(<App />, document.getElementById('app')!);
