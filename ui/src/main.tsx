import { render } from 'preact';
import './app.css';
import { App } from './components/App';

render(<App />, document.getElementById('app')!);
