// An ES module around the Reflect polyfill: imported first, it is initialised before @peculiar/x509
// (whose tsyringe needs it) whichever order the bundler gives the CommonJS side-effect imports.
import 'reflect-metadata';
